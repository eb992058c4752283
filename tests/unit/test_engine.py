import threading
import time
from pathlib import Path
from typing import Any

import pytest

from leviathan_tui.config import Config
from leviathan_tui.engine import Engine, Step, StepContext
from leviathan_tui.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_UNANSWERED,
    StepError,
    UsageError,
)
from leviathan_tui.events import (
    Event,
    Question,
    StepBlocked,
    StepDone,
    StepFailed,
    StepSkipped,
    StepStarted,
)
from leviathan_tui.replay import ReplayAnswerer, ReplayFile
from leviathan_tui.state import State


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: type) -> list[str]:
        return [e.step_id for e in self.events if isinstance(e, kind)]


class Timed(Step):
    def __init__(
        self,
        sid: str,
        needs: tuple[str, ...] = (),
        seconds: float = 0.0,
        fail: bool = False,
        phase: str = "p",
    ) -> None:
        self.id, self.title, self.needs, self.phase = sid, sid, needs, phase
        self.seconds, self.fail = seconds, fail
        self.span: tuple[float, float] | None = None
        self.runs = 0

    def check(self, ctx: StepContext) -> str | None:
        return "already" if ctx.artifact("made") else None

    def run(self, ctx: StepContext) -> str:
        self.runs += 1
        start = time.monotonic()
        ctx.sleep(self.seconds)
        self.span = (start, time.monotonic())
        if self.fail:
            raise StepError(f"{self.id} broke", "fix it")
        ctx.set_artifact("made", True)
        return "ok"


def make(
    steps: list[Step], tmp_path: Path, answers: dict[str, Any] | None = None
) -> tuple[Engine, Recorder]:
    rec = Recorder()
    engine = Engine(
        steps,
        config=Config(),
        state=State.load(tmp_path),
        backends=None,
        answerer=ReplayAnswerer(ReplayFile(None, {}, answers or {})),
        emit=rec,
    )
    return engine, rec


def test_order_follows_needs(tmp_path: Path) -> None:
    a, b, c = Timed("a"), Timed("b", ("a",)), Timed("c", ("b",))
    engine, rec = make([c, b, a], tmp_path)
    assert engine.run() == EXIT_OK
    assert rec.of(StepStarted) == ["a", "b", "c"]


def test_independent_steps_overlap(tmp_path: Path) -> None:
    root = Timed("root")
    dl, build = Timed("dl", ("root",), 0.6), Timed("build", (), 0.6)
    engine, _ = make([root, dl, build], tmp_path)
    start = time.monotonic()
    assert engine.run() == EXIT_OK
    total = time.monotonic() - start
    overlap = min(dl.span[1], build.span[1]) - max(dl.span[0], build.span[0])
    assert overlap > 0.45, overlap
    assert total < 1.1, total


def test_resume_skips_steps_whose_check_holds(tmp_path: Path) -> None:
    a, b = Timed("a"), Timed("b", ("a",))
    engine, _ = make([a, b], tmp_path)
    assert engine.run() == EXIT_OK
    a2, b2 = Timed("a"), Timed("b", ("a",))
    engine2, rec2 = make([a2, b2], tmp_path)
    assert engine2.run() == EXIT_OK
    assert (a2.runs, b2.runs) == (0, 0)
    assert rec2.of(StepSkipped) == ["a", "b"]


def test_failure_stops_dependants_only(tmp_path: Path) -> None:
    a = Timed("a", fail=True)
    b = Timed("b", ("a",))
    c = Timed("c", (), 0.1)
    engine, rec = make([a, b, c], tmp_path)
    assert engine.run() == EXIT_STEP_FAILED
    assert rec.of(StepFailed) == ["a"]
    assert rec.of(StepBlocked) == ["b"]
    assert "c" in rec.of(StepDone) and b.runs == 0
    assert engine.state.status("a") == "failed"


def test_unanswered_question_stops_the_run_with_3(tmp_path: Path) -> None:
    class Asks(Step):
        id, title, phase = "q.ask", "asks", "p"

        def run(self, ctx: StepContext) -> str:
            ctx.ask(Question("x.y", "What?"))
            return "never"

    slow = Timed("slow", (), 5.0)
    engine, _ = make([Asks(), slow], tmp_path)
    start = time.monotonic()
    assert engine.run() == EXIT_UNANSWERED
    assert time.monotonic() - start < 3.0  # the other step was told to stop


def test_cancel_saves_state_and_returns_130(tmp_path: Path) -> None:
    a = Timed("a", (), 5.0)
    engine, _ = make([a], tmp_path)
    threading.Timer(0.3, engine.cancel).start()
    assert engine.run() == EXIT_INTERRUPTED
    assert State.load(tmp_path).status("a") == "pending"


def test_only_refuses_phases_whose_needs_are_not_done(tmp_path: Path) -> None:
    a = Timed("a", phase="storage")
    b = Timed("b", ("a",), phase="deploy")
    engine, _ = make([a, b], tmp_path)
    with pytest.raises(UsageError, match="needs steps that are not done: a"):
        engine.run(["deploy"])
    assert engine.run(["storage"]) == EXIT_OK
    engine2, rec = make([Timed("a", phase="storage"), Timed("b", ("a",), phase="deploy")], tmp_path)
    assert engine2.run(["deploy"]) == EXIT_OK
    assert rec.of(StepStarted) == ["b"]


def test_secrets_are_never_answered_from_a_replay_file(tmp_path: Path) -> None:
    class AsksSecret(Step):
        id, title, phase = "ssh.connect", "asks", "p"

        def run(self, ctx: StepContext) -> str:
            ctx.ask(Question("ssh.passphrase", "Passphrase for key", details={"secret": True}))
            return "never"

    engine, rec = make([AsksSecret()], tmp_path, {"ssh.passphrase": "hunter2"})
    assert engine.run() == EXIT_UNANSWERED
    failure = next(e for e in rec.events if isinstance(e, StepFailed))
    assert "never read from a replay file" in failure.error and "ssh-agent" in failure.hint
    assert "hunter2" not in (tmp_path / "state.json").read_text()
