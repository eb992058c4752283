"""One snapshot per screen (pytest-textual-snapshot; Textual pinned in the test extra)."""

from __future__ import annotations

from pathlib import Path

from leviathan_tui.backends.dry import default_machine

from leviathan_tui.agent.lsblk import parse_lsblk
from leviathan_tui.events import Question
from leviathan_tui.phases.storage import confirm_question, device_choice, foreign_question
from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.device import DeviceScreen
from leviathan_tui.screens.question import QuestionScreen
from leviathan_tui.screens.resume import ResumeScreen
from leviathan_tui.screens.summary import SummaryScreen
from tests.tui.helpers import ScreenHost, make_app

SIZE = (130, 40)
DEVICES = parse_lsblk(default_machine())


def device_question() -> Question:
    return Question(
        "storage.device",
        "Which disk should hold the model?",
        kind="choice",
        choices=[device_choice(d, "leviathan") for d in DEVICES],
    )


def test_device_screen(snap_compare) -> None:
    assert snap_compare(ScreenHost(DeviceScreen(device_question())), terminal_size=SIZE)


def test_confirm_screen(snap_compare) -> None:
    assert snap_compare(
        ScreenHost(ConfirmFormatScreen(confirm_question(DEVICES[1], ""))), terminal_size=SIZE
    )


def test_loud_confirm_screen(snap_compare) -> None:
    q = foreign_question(DEVICES[2], "ext4 label 'scratch'")
    assert snap_compare(ScreenHost(ConfirmFormatScreen(q)), terminal_size=SIZE)


def test_host_key_question(snap_compare) -> None:
    q = Question(
        "ssh.host_key",
        "The build host 127.0.0.1 is not in known_hosts. Accept it?",
        presented="SHA256:dRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNdRyRuNw",
    )
    assert snap_compare(ScreenHost(QuestionScreen(q)), terminal_size=SIZE)


def test_resume_screen(snap_compare) -> None:
    screen = ResumeScreen(
        ["preflight.node: done", "storage.probe: done", "storage.format: running"],
        "2026-11-30T06:00:00Z",
    )
    assert snap_compare(ScreenHost(screen), terminal_size=SIZE)


def test_summary_screen(snap_compare) -> None:
    lines = {
        "Endpoint": "http://127.0.0.1:30000/v1  (OpenAI-style; model DeepSeek-V3)",
        "Try it": "curl -s http://127.0.0.1:30000/v1/chat/completions -d '{...}'",
        "Replay file": "/root/.local/state/leviathan/replay.yaml",
    }
    assert snap_compare(ScreenHost(SummaryScreen(lines)), terminal_size=SIZE)


def test_main_screen_before_start(snap_compare, tmp_path: Path) -> None:
    app = make_app(tmp_path / "fixed")
    app.start_engine = lambda: None  # the layout alone, before any (timing-dependent) event
    app.sub_title = "DRY RUN — nothing is touched"
    assert snap_compare(app, terminal_size=SIZE)
