import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from leviathan_tui.config import Config
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
    StepInterrupted,
    StepSkipped,
    StepStarted,
)
from leviathan_tui.records import Record, register
from leviathan_tui.replay import ReplayAnswerer, ReplayFile
from leviathan_tui.runner import Runner, Step, StepContext
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


_records: dict[str, type[Record]] = {}


def record_type(name: str) -> type[Record]:
    """One record type per test step ("a" publishes MadeA), registered with the state file."""
    if name not in _records:
        cls = dataclasses.make_dataclass(
            f"Made{name.upper()}", [("by", str)], bases=(Record,), frozen=True
        )
        _records[name] = register(cls)
    return _records[name]


class Timed(Step):
    def __init__(
        self,
        sid: str,
        reads: tuple[str, ...] = (),
        seconds: float = 0.0,
        fail: bool = False,
        phase: str = "p",
    ) -> None:
        self.id, self.title, self.phase = sid, sid, phase
        self.publishes = (record_type(sid),)
        self.reads_records = tuple(record_type(r) for r in reads)
        self.seconds, self.fail = seconds, fail
        self.span: tuple[float, float] | None = None
        self.runs = 0
        self.seen: list[Record] = []

    def check(self, ctx: StepContext) -> str | None:
        return "already" if ctx.get(self.publishes[0]) else None

    def run(self, ctx: StepContext) -> str:
        self.runs += 1
        self.seen = [ctx.need(cls) for cls in self.reads_records]
        start = time.monotonic()
        ctx.sleep(self.seconds)
        self.span = (start, time.monotonic())
        if self.fail:
            raise StepError(f"{self.id} broke", "fix it")
        ctx.publish(self.publishes[0](self.id))
        return "ok"


def make(
    steps: list[Step], tmp_path: Path, answers: dict[str, Any] | None = None
) -> tuple[Runner, Recorder]:
    rec = Recorder()
    runner = Runner(
        steps,
        config=Config(),
        state=State.load(tmp_path),
        backends=None,
        answerer=ReplayAnswerer(ReplayFile(None, {}, answers or {})),
        emit=rec,
    )
    return runner, rec


def test_needs_follow_from_the_records_a_step_reads(tmp_path: Path) -> None:
    a, b, c = Timed("a"), Timed("b", ("a",)), Timed("c", ("b",))
    runner, rec = make([c, b, a], tmp_path)
    assert runner.needs == {"c": ("b",), "b": ("a",), "a": ()}
    assert runner.run() == EXIT_OK
    assert rec.of(StepStarted) == ["a", "b", "c"]
    assert [r.by for r in c.seen] == ["b"]  # the typed accessor hands over b's record


def test_a_record_no_step_publishes_must_already_be_in_the_session(tmp_path: Path) -> None:
    runner, _ = make([Timed("b", ("z",))], tmp_path)
    with pytest.raises(UsageError, match="reads MadeZ, which no step of this run publishes"):
        runner.run()
    runner.state.publish("elsewhere", record_type("z")("elsewhere"))
    assert runner.run() == EXIT_OK


def test_reads_may_depend_on_the_config(tmp_path: Path) -> None:
    class Deploy(Timed):
        def reads(self, config: Config) -> tuple[type[Record], ...]:
            image = (record_type("image"),) if config.deploy.engine == "ktransformers" else ()
            return (record_type("disk"),) + image

    disk, image = Timed("disk"), Timed("image", fail=True)
    runner, rec = make([disk, image, Deploy("deploy")], tmp_path)
    assert runner.needs["deploy"] == ("disk", "image")
    assert runner.run() == EXIT_STEP_FAILED and rec.of(StepBlocked) == ["deploy"]
    other = Runner(
        [Timed("disk"), Timed("image", fail=True), Deploy("deploy")],
        config=Config.model_validate({"deploy": {"engine": "llamacpp"}}),
        state=State.load(tmp_path / "fallback"),
        backends=None,
        answerer=ReplayAnswerer(ReplayFile()),
        emit=(rec2 := Recorder()),
    )
    assert other.needs["deploy"] == ("disk",)
    other.run()
    assert "deploy" in rec2.of(StepDone)  # the fallback deploys while the build fails


def test_independent_steps_overlap(tmp_path: Path) -> None:
    root = Timed("root")
    dl, build = Timed("dl", ("root",), 2.0), Timed("build", (), 2.0)
    runner, _ = make([root, dl, build], tmp_path)
    start = time.monotonic()
    assert runner.run() == EXIT_OK
    total = time.monotonic() - start
    # each runs while the other does (fsyncs and thread hand-offs take their time on a slow disk)
    assert dl.span[0] < build.span[1] and build.span[0] < dl.span[1], (dl.span, build.span)
    assert total < 3.5, total  # in turn they would take 4 s


def test_resume_skips_steps_whose_check_holds(tmp_path: Path) -> None:
    a, b = Timed("a"), Timed("b", ("a",))
    runner, _ = make([a, b], tmp_path)
    assert runner.run() == EXIT_OK
    a2, b2 = Timed("a"), Timed("b", ("a",))
    runner2, rec2 = make([a2, b2], tmp_path)
    assert runner2.run() == EXIT_OK
    assert (a2.runs, b2.runs) == (0, 0)
    assert rec2.of(StepSkipped) == ["a", "b"]
    assert runner2.state.owner(record_type("a")) == "a"


def test_failure_stops_dependants_only(tmp_path: Path) -> None:
    a = Timed("a", fail=True)
    b = Timed("b", ("a",))
    c = Timed("c", (), 0.1)
    runner, rec = make([a, b, c], tmp_path)
    assert runner.run() == EXIT_STEP_FAILED
    assert rec.of(StepFailed) == ["a"]
    assert rec.of(StepBlocked) == ["b"]
    assert "c" in rec.of(StepDone) and b.runs == 0
    assert runner.state.status("a") == "failed"


def test_unanswered_question_stops_the_run_with_3(tmp_path: Path) -> None:
    class Asks(Step):
        id, title, phase = "q.ask", "asks", "p"

        def run(self, ctx: StepContext) -> str:
            ctx.ask(Question("storage.device", "What?"))
            return "never"

    slow = Timed("slow", (), 5.0)
    runner, _ = make([Asks(), slow], tmp_path)
    start = time.monotonic()
    assert runner.run() == EXIT_UNANSWERED
    assert time.monotonic() - start < 3.0  # the other step was told to stop


def test_cancel_marks_the_running_step_interrupted_and_returns_130(tmp_path: Path) -> None:
    a = Timed("a", (), 5.0)
    runner, rec = make([a], tmp_path)
    threading.Timer(0.3, runner.cancel).start()
    assert runner.run() == EXIT_INTERRUPTED
    assert State.load(tmp_path).status("a") == "interrupted"
    assert rec.of(StepInterrupted) == ["a"]


def test_a_step_left_running_by_a_killed_run_shows_as_interrupted(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.set_status("a", "running")
    runner, _ = make([Timed("a", (), 5.0)], tmp_path)
    runner.state.set_status("a", "running")
    stopper = threading.Timer(0.2, runner.cancel)
    stopper.start()
    seen = []
    original = runner.state.set_status

    def spy(step_id: str, status: str, **kw: Any) -> None:
        seen.append(status)
        original(step_id, status, **kw)

    runner.state.set_status = spy  # type: ignore[method-assign]
    runner.run()
    assert seen[0] == "interrupted"  # never left as "running"


def test_only_refuses_phases_whose_needs_are_not_done(tmp_path: Path) -> None:
    a = Timed("a", phase="storage")
    b = Timed("b", ("a",), phase="deploy")
    runner, _ = make([a, b], tmp_path)
    with pytest.raises(UsageError, match="needs steps that are not done: a"):
        runner.run(["deploy"])
    with pytest.raises(UsageError, match="empty phase name"):
        runner.run([""])
    assert runner.run(["storage"]) == EXIT_OK
    runner2, rec = make([Timed("a", phase="storage"), Timed("b", ("a",), phase="deploy")], tmp_path)
    assert runner2.run(["deploy"]) == EXIT_OK
    assert rec.of(StepStarted) == ["b"]


def test_secrets_are_never_answered_from_a_replay_file(tmp_path: Path) -> None:
    class AsksSecret(Step):
        id, title, phase = "ssh.connect", "asks", "p"

        def run(self, ctx: StepContext) -> str:
            ctx.ask(Question("ssh.passphrase", "Passphrase for key", secret=True))
            return "never"

    runner, rec = make([AsksSecret()], tmp_path, {"ssh.passphrase": "hunter2"})
    assert runner.run() == EXIT_UNANSWERED
    failure = next(e for e in rec.events if isinstance(e, StepFailed))
    assert "never read from a replay file" in failure.error and "ssh-agent" in failure.hint
    assert "hunter2" not in (tmp_path / "state.json").read_text()


def test_the_end_line_counts_what_ended_and_says_so_when_nothing_did() -> None:
    from leviathan_tui.runner import _finish_message

    assert _finish_message(EXIT_INTERRUPTED, {}).endswith("resume (no step ended)")
    assert _finish_message(EXIT_INTERRUPTED, {"a": "done", "b": "done"}).endswith("(2 done)")
