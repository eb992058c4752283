"""The engine: runs steps whose needs are met, independent ones at once, and reports events.

Steps run in worker threads (their backends block); everything they say reaches the front-end as
events through one callback, which both front-ends turn into a queue. The state is saved on every
status change, so a kill at any moment resumes from the last finished step.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from leviathan_tui.config import Config
from leviathan_tui.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_UNANSWERED,
    Cancelled,
    LeviathanError,
    UsageError,
)
from leviathan_tui.events import (
    Event,
    LogLine,
    Notice,
    Progress,
    Question,
    QuestionAsked,
    RunFinished,
    StepBlocked,
    StepDone,
    StepFailed,
    StepSkipped,
    StepStarted,
)
from leviathan_tui.state import State

log = logging.getLogger("leviathan")

Emit = Callable[[Event], None]


class Answerer(Protocol):
    """Where answers come from: the replay file (headless) or the operator (TUI)."""

    def answer(self, question: Question, cancelled: threading.Event) -> Any: ...

    def recorded(self, key: str) -> Any:
        """A recorded fact that is not a question (e.g. the chosen disk's serial), or None."""
        ...


class StepContext:
    """What a step may use: config, backends, the operator (through events) and its artifacts."""

    def __init__(self, engine: Engine, step: Step) -> None:
        self.engine = engine
        self.step = step
        self.config: Config = engine.config
        self.backends: Any = engine.backends
        self.state: State = engine.state
        self.cancelled: threading.Event = engine.cancelled

    def log(self, line: str, level: str = "info") -> None:
        self.engine.emit(LogLine(self.step.id, line, level))  # type: ignore[arg-type]

    def progress(
        self,
        done: float,
        total: float | None = None,
        *,
        item: str = "",
        unit: str = "B",
        note: str = "",
    ) -> None:
        self.engine.emit(Progress(self.step.id, done, total, item, unit, note))

    def notice(self, title: str, body: str, filename: str = "") -> None:
        self.engine.emit(Notice(self.step.id, title, body, filename))

    def ask(self, question: Question) -> Any:
        self.check_cancelled()
        self.engine.emit(QuestionAsked(self.step.id, question))
        answer = self.engine.answerer.answer(question, self.cancelled)
        self.check_cancelled()
        if not question.details.get("secret"):
            self.state.set_answer(question.id, answer)
        return answer

    def set_artifact(self, key: str, value: Any, *, coalesce: bool = False) -> None:
        self.state.set_artifact(self.step.id, key, value, coalesce=coalesce)

    def artifact(self, key: str, default: Any = None, *, step: str | None = None) -> Any:
        return self.state.artifact(step or self.step.id, key, default)

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
    needs: tuple[str, ...] = ()

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


class Engine:
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
        self._finished: list[_Outcome] = []
        self._cv = threading.Condition()
        for step in self.steps:
            for need in step.needs:
                if need not in self.by_id:
                    raise ValueError(f"step {step.id} needs unknown step {need}")

    def emit(self, event: Event) -> None:
        try:
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

    def select(self, only: Iterable[str] | None) -> list[Step]:
        if not only:
            return list(self.steps)
        wanted = {p.strip() for p in only if p.strip()}
        unknown = wanted - set(self.phases)
        if unknown:
            raise UsageError(
                f"--only: unknown phase {', '.join(sorted(unknown))}; phases are {', '.join(self.phases)}"
            )
        chosen = [s for s in self.steps if s.phase in wanted]
        chosen_ids = {s.id for s in chosen}
        missing = sorted(
            {
                n
                for s in chosen
                for n in s.needs
                if n not in chosen_ids and self.state.status(n) not in ("done", "skipped")
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

    def run(self, only: Iterable[str] | None = None) -> int:
        selected = self.select(only)
        selected_ids = {s.id for s in selected}
        for step in selected:
            if self.state.status(step.id) == "running":  # left over from a killed run
                self.state.set_status(step.id, "pending", error="interrupted")
        started: set[str] = set()
        finished: dict[str, str] = {}
        threads: dict[str, threading.Thread] = {}
        exit_code = EXIT_OK
        reported_blocked: set[str] = set()

        def satisfied(need: str) -> bool:
            if need in selected_ids:
                return finished.get(need) in ("done", "skipped")
            return self.state.status(need) in ("done", "skipped")

        while True:
            if not self.cancelled.is_set():
                for step in selected:
                    if step.id in started:
                        continue
                    if any(
                        finished.get(n) == "failed" or finished.get(n) == "blocked"
                        for n in step.needs
                    ):
                        started.add(step.id)
                        finished[step.id] = "blocked"
                        waiting = tuple(
                            n for n in step.needs if finished.get(n) in ("failed", "blocked")
                        )
                        if step.id not in reported_blocked:
                            reported_blocked.add(step.id)
                            self.emit(StepBlocked(step.id, waiting))
                        continue
                    if all(satisfied(n) for n in step.needs):
                        started.add(step.id)
                        thread = threading.Thread(
                            target=self._run_step, args=(step,), name=f"step-{step.id}", daemon=True
                        )
                        threads[step.id] = thread
                        thread.start()
            with self._cv:
                while not self._finished and not self.cancelled.is_set():
                    if not any(t.is_alive() for t in threads.values()) and not self._finished:
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
            if not running and not outcomes and all(s.id in started for s in selected):
                break
            if not running and not outcomes:
                # nothing runs and nothing can start: needs outside the run are missing
                pending = [s.id for s in selected if s.id not in started]
                if pending:
                    for sid in pending:
                        started.add(sid)
                        finished[sid] = "blocked"
                        self.emit(
                            StepBlocked(
                                sid, tuple(n for n in self.by_id[sid].needs if not satisfied(n))
                            )
                        )
                    if exit_code == EXIT_OK:
                        exit_code = EXIT_STEP_FAILED
                break

        if self.cancelled.is_set():
            deadline = time.monotonic() + self.stop_grace_s
            for thread in threads.values():
                thread.join(max(0.0, deadline - time.monotonic()))
            for step in selected:
                if self.state.status(step.id) == "running":
                    self.state.set_status(step.id, "pending", error="interrupted")
            if exit_code != EXIT_UNANSWERED:
                exit_code = EXIT_INTERRUPTED
        self.state.flush()
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
            self.state.set_status(step.id, "pending", error="interrupted")
            outcome = _Outcome(step.id, "interrupted", EXIT_INTERRUPTED)
        except LeviathanError as err:
            self.state.set_status(step.id, "failed", error=err.message)
            self.emit(StepFailed(step.id, err.message, err.hint))
            outcome = _Outcome(step.id, "failed", err.exit_code)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message, never a traceback
            log.error("step %s crashed:\n%s", step.id, traceback.format_exc())
            message = f"{type(err).__name__}: {err}"
            self.state.set_status(step.id, "failed", error=message)
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
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if exit_code == EXIT_OK:
        if counts and set(counts) == {"skipped"}:
            return f"nothing to do: every step already holds ({parts})"
        return f"bring-up complete ({parts})"
    if exit_code == EXIT_INTERRUPTED:
        return f"interrupted; state saved, run the same command to resume ({parts})"
    if exit_code == EXIT_UNANSWERED:
        return f"stopped at a question ({parts})"
    return f"stopped: a step failed ({parts})"
