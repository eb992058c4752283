"""The event and question vocabulary shared by the engine and both front-ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

QuestionKind = Literal["choice", "text", "confirm"]


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    selectable: bool = True
    reason: str = ""  # why a choice is not selectable
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Question:
    """A question with a stable id. `validate` returns an error text for a refused answer."""

    id: str
    prompt: str
    kind: QuestionKind = "text"
    choices: list[Choice] = field(default_factory=list)
    default: Any = None
    destructive: bool = False
    presented: str | None = None  # the value to show, e.g. a fingerprint the operator accepts
    details: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[Any], str | None] | None = None
    placeholder: str = "VALUE"

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
        value = self.presented if self.presented is not None else self.placeholder
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
class LogLine(Event):
    line: str = ""
    level: Literal["debug", "info", "warn", "error"] = "info"


@dataclass(frozen=True)
class Progress(Event):
    done: float = 0
    total: float | None = None
    item: str = ""  # e.g. a shard name; "" is the step's overall progress
    unit: str = "B"
    note: str = ""


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
