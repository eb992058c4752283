"""Pilot drives the real wizard through the dry-run world, from the first screen to the summary."""

from __future__ import annotations

from pathlib import Path

import yaml

from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.resume import ResumeScreen
from leviathan_tui.widgets.log_pane import LogPane
from tests.tui.helpers import make_app, walk


async def test_walk_dry_run_to_summary(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(150, 48)) as pilot:
        seen = await walk(app, pilot)
        assert seen[-1] == "SummaryScreen", seen
        assert "DeviceScreen" in seen and "ConfirmFormatScreen" in seen and "QuestionScreen" in seen
        assert seen.index("DeviceScreen") < seen.index("ConfirmFormatScreen")
        assert app.exit_code == 0
        order = app.events_seen
        assert order.index("StepDone:storage.format") < order.index("StepStarted:download.fetch")
        assert order.index("StepDone:build.push") < order.index("StepStarted:deploy.apply")
        assert order[-1] == "RunFinished:"
        summary = app.summary_lines()
        assert summary["Try it"].startswith("curl -s http://192.168.3.20:30000/v1/chat/completions")
        await pilot.press("q")
    replay = yaml.safe_load((tmp_path / "replay.yaml").read_text())
    assert replay["version"] == 1
    assert replay["answers"]["storage.device"] == "/dev/nvme1n1"
    assert replay["answers"]["storage.confirm_format"] == "nvme1n1"
    assert replay["answers"]["ssh.host_key"].startswith("SHA256:")
    assert replay["answers"]["storage.device_serial"] == "S64HNE0R812345"


async def test_foreign_filesystem_needs_the_louder_confirmation(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    loud = []
    async with app.run_test(size=(150, 48)) as pilot:
        for _ in range(400):
            await pilot.pause(0.05)
            screen = app.screen
            if isinstance(screen, ConfirmFormatScreen):
                loud.append(screen.has_class("loud"))
            if "StepDone:storage.format" in app.events_seen:
                break
            seen = await walk(app, pilot, device="/dev/nvme2n1", max_steps=1)
            del seen
        assert loud and loud[-1] is True and False in loud
        await pilot.press("q")


async def test_confirm_refuses_the_wrong_name_and_cancel_formats_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(150, 48)) as pilot:
        for _ in range(400):
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmFormatScreen):
                break
            await walk(app, pilot, max_steps=1)
        screen = app.screen
        assert isinstance(screen, ConfirmFormatScreen)
        assert app.focused.id == "cancel"
        screen.query_one("#answer").value = "nvme2n1"
        await pilot.pause(0.05)
        assert screen.query_one("#confirm").disabled
        await pilot.click("#cancel")
        await pilot.pause(0.5)
        assert "StepDone:storage.format" not in app.events_seen
        assert not any("mkfs" in a for a in app.backends.actions)
        await pilot.press("q")
        await pilot.pause(0.5)


async def test_saved_session_offers_resume_or_start_over(tmp_path: Path) -> None:
    from leviathan_tui.state import State

    st = State.load(tmp_path)
    st.set_status("preflight.node", "done", summary="ok")
    app = make_app(tmp_path)
    async with app.run_test(size=(150, 48)) as pilot:
        await pilot.pause(0.2)
        assert isinstance(app.screen, ResumeScreen)
        await pilot.press("tab", "enter")
        await pilot.pause(0.5)
        assert not isinstance(app.screen, ResumeScreen)
        assert any("started over" in line for _, line, _ in app.query_one(LogPane).lines)
        await pilot.press("q")


async def test_verify_again_after_the_bring_up(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(150, 48)) as pilot:
        seen = await walk(app, pilot)
        assert seen[-1] == "SummaryScreen"
        await pilot.press("escape")
        await pilot.pause(0.2)
        await pilot.press("v")
        for _ in range(200):
            await pilot.pause(0.05)
            if "StepDone:download.verify" in app.events_seen:
                break
        assert "StepStarted:download.verify" in app.events_seen
        assert "StepDone:download.verify" in app.events_seen
        assert any("hash every model file again" in a for a in app.backends.actions)
        await pilot.press("q")
