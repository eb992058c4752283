"""The step runner: runs steps whose needs are met, independent ones at once, and reports events.

A step's needs follow from the records it reads: the runner finds the step that publishes each
record type (`Step.publishes`) and waits for it. What a step reads may depend on the config (a
llama.cpp deployment reads no built image), so the llama.cpp fallback deploys while a
KTransformers build is failing.

Steps run in worker threads (their backends block); everything they say reaches the front-end as
events through one callback. The state is saved on every status change and every record, so a
kill at any moment resumes from the last finished step.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from leviathan_tui.config import Config
from leviathan_tui.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_UNANSWERED,
    Cancelled,
    LeviathanError,
    StepError,
    UsageError,
)
from leviathan_tui.events import (
    Event,
    Explanation,
    FileProgress,
    FilesPlanned,
    FileState,
    HealthAttempt,
    Level,
    LogLine,
    Notice,
    PodState,
    Progress,
    Question,
    QuestionAsked,
    RunFinished,
    StepBlocked,
    StepDone,
    StepFailed,
    StepInterrupted,
    StepSkipped,
    StepStarted,
)
from leviathan_tui.records import Record
from leviathan_tui.state import State, StateWriteError

log = logging.getLogger("leviathan")
log.addHandler(logging.NullHandler())  # the front-end decides where it goes (leviathan.log)
LEVELS = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def journal(event: Event) -> None:
    """The lasting record of a run in the session's leviathan.log: every log line and every
    step's start and end, across runs (the TUI's pane holds only this run's)."""
    step = event.step_id or "-"
    match event:
        case LogLine():
            log.log(LEVELS.get(event.level, logging.INFO), "%s: %s", step, event.line)
        case StepStarted():
            log.info("%s: started: %s", step, event.title)
        case StepDone():
            log.info("%s: done: %s", step, event.summary)
        case StepSkipped():
            log.info("%s: skipped: %s", step, event.reason)
        case StepFailed():
            fix = f" (fix: {event.hint})" if event.hint else ""
            log.error("%s: failed: %s%s", step, event.error, fix)
        case StepInterrupted():
            log.warning("%s: interrupted", step)
        case RunFinished():
            log.info("finished: %s (exit %s)", event.message, event.exit_code)


Emit = Callable[[Event], None]
R = TypeVar("R", bound=Record)
FINISHED_OK = ("done", "skipped")


class Answerer(Protocol):
    """Where answers come from: the replay file (headless) or the operator (TUI)."""

    def answer(self, question: Question, cancelled: threading.Event) -> Any: ...

    def recorded(self, key: str) -> Any:
        """A recorded fact that is not a question (e.g. the chosen disk's serial), or None."""
        ...

    def record_fact(self, key: str, value: Any) -> None:
        """Remember a fact beside the answers (the TUI writes it to replay.yaml)."""
        ...


class StepContext:
    """What a step may use: config, backends, records, and the operator (through events)."""

    def __init__(self, runner: Runner, step: Step) -> None:
        self.runner = runner
        self.step = step
        self.config: Config = runner.config
        self.backends: Any = runner.backends
        self.state: State = runner.state
        self.cancelled: threading.Event = runner.cancelled

    # --- records -----------------------------------------------------------------------------

    def need(self, cls: type[R]) -> R:
        """A record this step reads; its publisher has finished, so it is there."""
        record = self.state.get(cls)
        if record is None:
            raise StepError(
                f"{self.step.id} needs the {cls.__name__} record, which no step has published",
                f"run the step that publishes it first ({self.runner.publisher_of(cls)})",
            )
        return record

    def get(self, cls: type[R]) -> R | None:
        """A record that may be absent (optional input, or this step's own earlier output)."""
        return self.state.get(cls)

    def publish(self, record: Record, *, coalesce: bool = False) -> None:
        self.state.publish(self.step.id, record, coalesce=coalesce)

    def retract(self, cls: type[Record]) -> None:
        self.state.drop(cls)

    # --- telling the operator ----------------------------------------------------------------

    def log(self, line: str, level: Level = "info") -> None:
        self.runner.emit(LogLine(self.step.id, line, level))

    def progress(
        self, done: float, total: float | None = None, *, unit: str = "B", note: str = ""
    ) -> None:
        self.runner.emit(Progress(self.step.id, done, total, unit, note))

    def files_planned(self, files: Iterable[tuple[str, int]]) -> None:
        self.runner.emit(FilesPlanned(self.step.id, tuple(files)))

    def file_progress(
        self, file: str, done: int, total: int | None, state: FileState, note: str = ""
    ) -> None:
        self.runner.emit(FileProgress(self.step.id, file, done, total, state, note))

    def pod_state(
        self, pod: str, phase: str, reason: str = "", restarts: int = 0, message: str = ""
    ) -> None:
        self.runner.emit(PodState(self.step.id, pod, phase, reason, restarts, message))

    def explain(self, cause: str, fix: str, rule: str = "") -> None:
        self.runner.emit(Explanation(self.step.id, cause, fix, rule))

    def health_attempt(self, text: str, elapsed_s: float, timeout_s: float) -> None:
        self.runner.emit(HealthAttempt(self.step.id, text, elapsed_s, timeout_s))

    def notice(self, title: str, body: str, filename: str = "") -> None:
        self.runner.emit(Notice(self.step.id, title, body, filename))

    def ask(self, question: Question) -> Any:
        self.check_cancelled()
        question.step_id = self.step.id
        self.runner.emit(QuestionAsked(self.step.id, question))
        answer = self.runner.answerer.answer(question, self.cancelled)
        self.check_cancelled()
        if not question.secret:
            self.state.set_answer(question.id, answer)
        return answer

    # --- time --------------------------------------------------------------------------------

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()

    def sleep(self, seconds: float) -> None:
        """Sleep that wakes up at once when the run is interrupted."""
        if self.cancelled.wait(seconds):
            raise Cancelled()


class Step:
    """A unit of the bring-up. Subclasses set the class attributes and override check/run."""

    id: str = ""
    title: str = ""
    phase: str = ""
    publishes: tuple[type[Record], ...] = ()
    reads_records: tuple[type[Record], ...] = ()

    def reads(self, config: Config) -> tuple[type[Record], ...]:
        """The records this step needs; override when they depend on the config."""
        return self.reads_records

    def check(self, ctx: StepContext) -> str | None:
        """Return why the world already holds this step's result (then it is skipped), else None."""
        return None

    def run(self, ctx: StepContext) -> str:
        """Do the work; return a one-line summary."""
        raise NotImplementedError


@dataclass
class _Outcome:
    step_id: str
    status: str
    exit_code: int = EXIT_OK


class Runner:
    def __init__(
        self,
        steps: Iterable[Step],
        *,
        config: Config,
        state: State,
        backends: Any,
        answerer: Answerer,
        emit: Emit,
        stop_grace_s: float = 10.0,
    ) -> None:
        self.steps = list(steps)
        self.by_id = {s.id: s for s in self.steps}
        self.config = config
        self.state = state
        self.backends = backends
        self.answerer = answerer
        self._emit = emit
        self.cancelled = threading.Event()
        self.stop_grace_s = stop_grace_s
        self.fatal: LeviathanError | None = None
        self._finished: list[_Outcome] = []
        self._cv = threading.Condition()
        self._publishers: dict[type[Record], str] = {}
        for step in self.steps:
            for cls in step.publishes:
                self._publishers[cls] = step.id
        self.needs: dict[str, tuple[str, ...]] = {}
        self.outside: dict[str, tuple[type[Record], ...]] = {}  # read, published by no step here
        for step in self.steps:
            needs: list[str] = []
            for cls in step.reads(config):
                owner = self._publishers.get(cls)
                if owner is None:
                    self.outside[step.id] = (*self.outside.get(step.id, ()), cls)
                elif owner != step.id and owner not in needs:
                    needs.append(owner)
            self.needs[step.id] = tuple(needs)

    def publisher_of(self, cls: type[Record]) -> str:
        return self._publishers.get(cls, "?")

    def emit(self, event: Event) -> None:
        try:
            journal(event)
            self._emit(event)
        except Exception:  # a broken front-end must not kill a step
            log.exception("event delivery failed")

    # --- selection -------------------------------------------------------------------------

    @property
    def phases(self) -> list[str]:
        seen: list[str] = []
        for step in self.steps:
            if step.phase not in seen:
                seen.append(step.phase)
        return seen

    def _check_outside(self, steps: list[Step]) -> None:
        """Records no step of this run publishes must already be in the session."""
        for step in steps:
            absent = [
                c.__name__ for c in self.outside.get(step.id, ()) if self.state.get(c) is None
            ]
            if absent:
                raise UsageError(
                    f"{step.id} reads {', '.join(absent)}, which no step of this run publishes "
                    "and the session does not hold",
                    "run the whole bring-up (without --only), or the phases that produce them first",
                )

    def select(self, only: Iterable[str] | None) -> list[Step]:
        if only is None:
            self._check_outside(self.steps)
            return list(self.steps)
        wanted = {p.strip() for p in only}
        if not wanted or "" in wanted:
            raise UsageError(
                "--only: empty phase name", f"name phases from: {', '.join(self.phases)}"
            )
        unknown = wanted - set(self.phases)
        if unknown:
            raise UsageError(
                f"--only: unknown phase {', '.join(sorted(unknown))}; phases are {', '.join(self.phases)}"
            )
        chosen = [s for s in self.steps if s.phase in wanted]
        self._check_outside(chosen)
        chosen_ids = {s.id for s in chosen}
        missing = sorted(
            {
                n
                for s in chosen
                for n in self.needs[s.id]
                if n not in chosen_ids and self.state.status(n) not in FINISHED_OK
            }
        )
        if missing:
            raise UsageError(
                f"--only {','.join(sorted(wanted))}: needs steps that are not done: {', '.join(missing)}",
                f"run those phases first (e.g. --only {','.join(sorted({self.by_id[m].phase for m in missing}))})",
            )
        return chosen

    # --- running ---------------------------------------------------------------------------

    def cancel(self) -> None:
        self.cancelled.set()
        with self._cv:
            self._cv.notify_all()

    def _save_status(self, step_id: str, status: str, **kw: Any) -> None:
        try:
            self.state.set_status(step_id, status, **kw)
        except StateWriteError as err:
            self._fail_run(err)

    def _fail_run(self, err: LeviathanError) -> None:
        if self.fatal is None:
            self.fatal = err
        self.cancel()

    def run(self, only: Iterable[str] | None = None) -> int:
        selected = self.select(only)
        selected_ids = {s.id for s in selected}
        for step in selected:
            if self.state.status(step.id) == "running":  # left over from a killed run
                self._save_status(step.id, "interrupted")
        started: set[str] = set()
        finished: dict[str, str] = {}
        threads: dict[str, threading.Thread] = {}
        exit_code = EXIT_OK

        def satisfied(need: str) -> bool:
            if need in selected_ids:
                return finished.get(need) in FINISHED_OK
            return self.state.status(need) in FINISHED_OK

        def block(step: Step, waiting: tuple[str, ...]) -> None:
            started.add(step.id)
            finished[step.id] = "blocked"
            self.emit(StepBlocked(step.id, waiting))

        while True:
            if not self.cancelled.is_set():
                for step in selected:
                    if step.id in started:
                        continue
                    failed_needs = tuple(
                        n for n in self.needs[step.id] if finished.get(n) in ("failed", "blocked")
                    )
                    if failed_needs:
                        block(step, failed_needs)
                        continue
                    if all(satisfied(n) for n in self.needs[step.id]):
                        started.add(step.id)
                        thread = threading.Thread(
                            target=self._run_step, args=(step,), name=f"step-{step.id}", daemon=True
                        )
                        threads[step.id] = thread
                        thread.start()
            with self._cv:
                while not self._finished and not self.cancelled.is_set():
                    if not any(t.is_alive() for t in threads.values()):
                        break
                    self._cv.wait(0.5)
                outcomes, self._finished = self._finished, []
            for outcome in outcomes:
                finished[outcome.step_id] = outcome.status
                if outcome.exit_code == EXIT_UNANSWERED:
                    exit_code = EXIT_UNANSWERED
                    self.cancel()
                elif outcome.status == "failed" and exit_code == EXIT_OK:
                    exit_code = EXIT_STEP_FAILED
            if self.cancelled.is_set():
                break
            running = [sid for sid, t in threads.items() if t.is_alive()]
            if not running and not outcomes:
                pending = [s for s in selected if s.id not in started]
                for step in pending:  # nothing runs and nothing can start: needs outside the run
                    block(step, tuple(n for n in self.needs[step.id] if not satisfied(n)))
                if pending and exit_code == EXIT_OK:
                    exit_code = EXIT_STEP_FAILED
                break

        if self.cancelled.is_set():
            deadline = time.monotonic() + self.stop_grace_s
            for thread in threads.values():
                thread.join(max(0.0, deadline - time.monotonic()))
            for step in selected:
                if self.state.status(step.id) == "running":
                    self._save_status(step.id, "interrupted")
            if exit_code != EXIT_UNANSWERED:
                exit_code = EXIT_INTERRUPTED
        try:
            self.state.flush()
        except StateWriteError as err:
            self.fatal = self.fatal or err
        if self.fatal is not None:
            exit_code = self.fatal.exit_code
            message = f"stopped: {self.fatal.message}"
            if self.fatal.hint:
                message += f" — {self.fatal.hint}"
            self.emit(RunFinished("", exit_code, message))
            return exit_code
        if exit_code == EXIT_OK and any(v == "blocked" for v in finished.values()):
            exit_code = EXIT_STEP_FAILED
        self.emit(RunFinished("", exit_code, _finish_message(exit_code, finished)))
        return exit_code

    def _run_step(self, step: Step) -> None:
        ctx = StepContext(self, step)
        outcome = _Outcome(step.id, "failed", EXIT_STEP_FAILED)
        try:
            reason = step.check(ctx)
            if reason:
                self.state.set_status(step.id, "skipped", summary=reason)
                self.emit(StepSkipped(step.id, reason))
                outcome = _Outcome(step.id, "skipped")
            else:
                self.state.set_status(step.id, "running")
                self.emit(StepStarted(step.id, step.title))
                summary = step.run(ctx) or ""
                ctx.check_cancelled()
                self.state.set_status(step.id, "done", summary=summary)
                self.emit(StepDone(step.id, summary))
                outcome = _Outcome(step.id, "done")
        except Cancelled:
            self._save_status(step.id, "interrupted")
            self.emit(StepInterrupted(step.id))
            outcome = _Outcome(step.id, "interrupted", EXIT_INTERRUPTED)
        except StateWriteError as err:
            self._fail_run(
                StateWriteError(err.message, "free space in the state directory, then run again")
            )
            self.emit(StepFailed(step.id, err.message, "free space in the state directory"))
            outcome = _Outcome(step.id, "failed", EXIT_STEP_FAILED)
        except LeviathanError as err:
            self._save_status(step.id, "failed", error=err.message)
            self.emit(StepFailed(step.id, err.message, err.hint))
            outcome = _Outcome(step.id, "failed", err.exit_code)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message, never a traceback
            log.error("step %s crashed:\n%s", step.id, traceback.format_exc())
            message = f"{type(err).__name__}: {err}"
            self._save_status(step.id, "failed", error=message)
            self.emit(
                StepFailed(
                    step.id,
                    message,
                    "this is a bug in Leviathan; the traceback is in leviathan.log in the state directory",
                )
            )
            outcome = _Outcome(step.id, "failed", EXIT_STEP_FAILED)
        with self._cv:
            self._finished.append(outcome)
            self._cv.notify_all()


def _finish_message(exit_code: int, finished: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for status in finished.values():
        counts[status] = counts.get(status, 0) + 1
    counted = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    parts = f" ({counted})" if counts else " (no step ended)"
    if exit_code == EXIT_OK:
        if counts and set(counts) == {"skipped"}:
            return f"nothing to do: every step already holds{parts}"
        return f"bring-up complete{parts}"
    if exit_code == EXIT_INTERRUPTED:
        return f"interrupted; state saved, run the same command to resume{parts}"
    if exit_code == EXIT_UNANSWERED:
        return f"stopped at a question{parts}"
    return f"stopped: a step failed{parts}"
