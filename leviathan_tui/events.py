"""The event and question vocabulary shared by the runner and both front-ends.

Front-ends dispatch on these types, never on message text or question ids: a step that wants
something shown in a particular place emits the event type for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

QuestionKind = Literal["choice", "text"]
Screen = Literal["device", "confirm", "text"]
Level = Literal["debug", "info", "warn", "error"]


@dataclass(frozen=True)
class DeviceFacts:
    """What the operator sees about a disk, on the disk list and the confirmations."""

    path: str
    name: str
    size: int
    model: str = ""
    serial: str = ""
    transport: str = ""
    rotational: bool = False
    fstype: str = ""
    label: str = ""
    signatures: tuple[str, ...] = ()  # every filesystem / partition table / label found
    mounts: tuple[str, ...] = ()
    by_id: tuple[str, ...] = ()
    ours: bool = False
    foreign: str = ""
    fits: bool | None = None  # None: the model's size is not known
    fit_note: str = ""


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    selectable: bool = True
    reason: str = ""  # why a choice is not selectable
    device: DeviceFacts | None = None
    preselect: bool = False


@dataclass
class Question:
    """A question with a stable id. `validate` returns an error text for a refused answer."""

    id: str
    prompt: str
    kind: QuestionKind = "text"
    screen: Screen = "text"
    choices: list[Choice] = field(default_factory=list)
    destructive: bool = False  # never answered by a default, never reused silently
    secret: bool = False  # never recorded, never read from a replay file
    loud: bool = False  # the louder confirmation (someone else's data)
    reuse_answer: bool = True  # a resumed session may reuse the earlier answer
    expected: str | None = None  # the exact text to type, shown as text (never a placeholder)
    presented: str | None = None  # a value to show, e.g. a fingerprint the operator accepts
    device: DeviceFacts | None = None  # the disk a confirmation is about
    risks: tuple[str, ...] = ()
    refusal_hint: str = ""
    check_first: str = ""  # what to verify before writing the answer into a replay file
    placeholder: str = "VALUE"  # what the replay file's line shows when nothing better is known
    validate: Callable[[Any], str | None] | None = None
    step_id: str = ""  # set by the runner when a step asks

    def check(self, answer: Any) -> str | None:
        if answer is None or answer == "":
            return "no answer given"
        if self.kind == "choice" and self.choices:
            values = {c.value: c for c in self.choices}
            choice = values.get(str(answer))
            if choice is None:
                return f"{answer!r} is not one of: {', '.join(values)}"
            if not choice.selectable:
                return f"{answer} cannot be chosen: {choice.reason}"
        return self.validate(answer) if self.validate else None

    def yaml_line(self) -> str:
        import yaml

        value = self.presented or self.expected or self.placeholder
        return yaml.safe_dump({self.id: value}, default_flow_style=False, width=200).strip()


@dataclass(frozen=True)
class Event:
    step_id: str


@dataclass(frozen=True)
class StepStarted(Event):
    title: str = ""


@dataclass(frozen=True)
class StepDone(Event):
    summary: str = ""


@dataclass(frozen=True)
class StepSkipped(Event):
    reason: str = ""


@dataclass(frozen=True)
class StepFailed(Event):
    error: str = ""
    hint: str = ""


@dataclass(frozen=True)
class StepBlocked(Event):
    waiting_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepInterrupted(Event):
    """The step was running when the run stopped; it resumes on the next run."""


@dataclass(frozen=True)
class LogLine(Event):
    line: str = ""
    level: Level = "info"


@dataclass(frozen=True)
class Progress(Event):
    """A step's overall progress."""

    done: float = 0
    total: float | None = None
    unit: str = "B"
    note: str = ""


FileState = Literal["waiting", "downloading", "resuming", "retrying", "verifying", "done", "failed"]


def found_on_disk(previous: FileState | str, state: FileState | str) -> bool:
    """A file resumed, or complete from an earlier run: its bytes were not moved by this run, so
    a speed must not count them."""
    return state == "resuming" or (state == "done" and previous == "waiting")


@dataclass(frozen=True)
class FilesPlanned(Event):
    """Every file of a transfer, listed before the first byte moves: (name, size) pairs."""

    files: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class FileProgress(Event):
    file: str = ""
    done: int = 0
    total: int | None = None
    state: FileState = "downloading"
    note: str = ""


@dataclass(frozen=True)
class PodState(Event):
    pod: str = ""
    phase: str = ""
    reason: str = ""
    restarts: int = 0
    message: str = ""


@dataclass(frozen=True)
class Explanation(Event):
    """Why something is stuck or failed, and what to do (a rollout, a build)."""

    cause: str = ""
    fix: str = ""
    rule: str = ""


@dataclass(frozen=True)
class HealthAttempt(Event):
    text: str = ""
    elapsed_s: float = 0.0
    timeout_s: float = 0.0


@dataclass(frozen=True)
class QuestionAsked(Event):
    question: Question | None = None


@dataclass(frozen=True)
class Notice(Event):
    """Something the operator should read and maybe save (a Talos patch, a fix)."""

    title: str = ""
    body: str = ""
    filename: str = ""


@dataclass(frozen=True)
class RunFinished(Event):
    exit_code: int = 0
    message: str = ""
