"""The headless front-end: answers from a replay file, one plain line per event on stdout,
diagnostics on stderr. Never imports Textual."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Any, TextIO

from leviathan_tui import signals
from leviathan_tui.errors import EXIT_INTERRUPTED, LeviathanError
from leviathan_tui.events import (
    Event,
    Explanation,
    FileProgress,
    FilesPlanned,
    HealthAttempt,
    LogLine,
    Notice,
    Progress,
    QuestionAsked,
    RunFinished,
    StepBlocked,
    StepDone,
    StepFailed,
    StepInterrupted,
    StepSkipped,
    StepStarted,
    found_on_disk,
)
from leviathan_tui.runner import Runner
from leviathan_tui.streams import tell
from leviathan_tui.units import decimal_size, duration, rate

PROGRESS_EVERY_S = 3.0


class ProgressLines:
    """Throttled progress lines with speed and ETA from rich's Task (not home-made maths)."""

    def __init__(self, every_s: float = PROGRESS_EVERY_S) -> None:
        from rich.progress import Progress as RichProgress

        self.every_s = every_s
        self._rich = RichProgress(auto_refresh=False, disable=True)
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self._finished: set[str] = set()
        self._rebase: set[str] = set()

    def rebase(self, step_id: str) -> None:
        """Bytes found on the disk are not bytes per second: the step's speed starts again."""
        self._rebase.add(step_id)

    def line(self, event: Progress) -> str | None:
        key = event.step_id
        if key not in self._tasks:
            self._tasks[key] = self._rich.add_task(key, total=event.total)
        task_id = self._tasks[key]
        if key in self._rebase:
            self._rebase.discard(key)
            self._rich.reset(task_id, completed=event.done, total=event.total)
        else:
            self._rich.update(task_id, completed=event.done, total=event.total)
        finished = event.total is not None and event.done >= event.total
        now = time.monotonic()
        if finished and key in self._finished:
            return None
        if not finished and now - self._last.get(key, 0.0) < self.every_s:
            return None
        if finished:
            self._finished.add(key)
        self._last[key] = now
        task = self._rich.tasks[task_id]
        if event.unit == "B":
            text = decimal_size(event.done) + (
                f" of {decimal_size(event.total)} ({100 * event.done / event.total:.1f}%)"
                if event.total
                else ""
            )
            if task.speed:
                text += f", {rate(task.speed)}"
            if task.time_remaining is not None and not finished:
                text += f", ETA {duration(task.time_remaining)}"
        else:
            text = f"{event.done:.0f} {event.unit}" + (
                f" of {event.total:.0f}" if event.total else ""
            )
        if event.note:
            text += f" — {event.note}"
        return text


class HeadlessPrinter:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.progress = ProgressLines()
        self.failures: list[StepFailed] = []
        self.reader_gone = False  # stdout's reader closed it (`| head`)
        self.file_states: dict[str, str] = {}

    def _print(self, step: str, kind: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        lines = text.splitlines() or [""]
        self._write(
            [f"{stamp} {step or '-':<20} {kind:<8} {lines[0]}"] + [" " * 39 + x for x in lines[1:]]
        )

    def _write(self, lines: list[str]) -> None:
        if not tell(self.out, "".join(line + "\n" for line in lines)):
            self.reader_gone = True
            self.out = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the run)

    def handle(self, event: Event) -> None:
        match event:
            case StepStarted():
                self._print(event.step_id, "started", event.title)
            case StepDone():
                self._print(event.step_id, "done", event.summary)
            case StepSkipped():
                self._print(event.step_id, "skipped", f"already done: {event.reason}")
            case StepFailed():
                self.failures.append(event)
                self._print(event.step_id, "FAILED", event.error)
                if event.hint:
                    self._print(event.step_id, "fix", event.hint)
            case StepInterrupted():
                self._print(event.step_id, "stopped", "interrupted; resumes on the next run")
            case StepBlocked():
                self._print(
                    event.step_id, "blocked", f"not run: waiting for {', '.join(event.waiting_for)}"
                )
            case LogLine():
                self._print(
                    event.step_id, event.level if event.level != "info" else "log", event.line
                )
            case Progress():
                line = self.progress.line(event)
                if line:
                    self._print(event.step_id, "progress", line)
            case Explanation():
                self._print(event.step_id, "why", f"{event.cause} — fix: {event.fix}")
            case FileProgress():
                if found_on_disk(self.file_states.get(event.file, "waiting"), event.state):
                    self.progress.rebase(event.step_id)
                self.file_states[event.file] = event.state
            case HealthAttempt() | FilesPlanned():
                pass  # the log lines say the same; the TUI draws these
            case QuestionAsked():
                q = event.question
                assert q is not None
                self._print(event.step_id, "question", f"{q.id}: {q.prompt}")
            case Notice():
                self._print(
                    event.step_id,
                    "notice",
                    f"{event.title}" + (f" (saved to {event.filename})" if event.filename else ""),
                )
                self._write(["    " + line for line in event.body.splitlines()])
            case RunFinished():
                self._print("", "finished", f"{event.message} (exit {event.exit_code})")

    def diagnostics(self) -> None:
        for failure in self.failures:
            tell(self.err, f"error: {failure.step_id}: {failure.error}\n")
            if failure.hint:
                tell(self.err, f"  fix: {failure.hint}\n")


def run_headless(
    engine: Runner,
    events: queue.Queue[Event],
    only: list[str] | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    printer = HeadlessPrinter(out, err)
    result: dict[str, int] = {}

    def drive() -> None:
        try:
            result["code"] = engine.run(only)
        except BaseException as exc:  # surface anything unexpected in the main thread
            result["error"] = 1
            events.put(RunFinished("", 1, f"internal error: {type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=drive, name="engine", daemon=True)
    signals.counting()  # from here a signal is a request to stop, polled below
    thread.start()
    seen = signals.received()
    stopping = False
    while True:
        now = signals.received()
        if printer.reader_gone and not stopping:
            stopping = True  # nobody reads the run any more: stop it as an interruption would
            engine.cancel()
            tell(
                err,
                "stdout is gone (its reader closed it, or the terminal hung up): "
                "stopping the running steps and saving the session\n",
            )
        if now > seen and not stopping:
            stopping = True
            engine.cancel()
            tell(
                err,
                f"interrupted ({signals.name()}): stopping the running steps and saving the session "
                "(again to quit at once)\n",
            )
        elif now > seen + 1:
            engine.cancel()
            _flush_quietly(engine)
            tell(err, "interrupted again: quitting now; the session is saved\n")
            printer.handle(
                RunFinished("", EXIT_INTERRUPTED, "interrupted again: quit at once; state saved")
            )
            return EXIT_INTERRUPTED
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            if not thread.is_alive() and events.empty():
                break
            continue
        printer.handle(event)
        if isinstance(event, RunFinished):
            break
    thread.join(timeout=5)
    printer.diagnostics()
    if stopping:
        return EXIT_INTERRUPTED
    return result.get("code", 1)


def _flush_quietly(engine: Runner) -> None:
    try:
        engine.state.flush()
    except LeviathanError as err:
        tell(sys.stderr, f"leviathan: {err.message}\n")
