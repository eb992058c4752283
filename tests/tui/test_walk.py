"""Pilot drives the real wizard through the dry-run world with an operator's keys, at 80x24 and
120x40: Enter first, Esc to go back, Tab then Enter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from leviathan_tui.app import EngineEvent
from leviathan_tui.events import FileProgress, FilesPlanned, StepDone, StepStarted
from leviathan_tui.records import DataDisk
from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.device import DeviceScreen
from leviathan_tui.screens.plan import PlanScreen
from leviathan_tui.screens.question import QuestionScreen
from leviathan_tui.screens.quit import QuitScreen
from leviathan_tui.screens.resume import ResumeScreen
from leviathan_tui.screens.summary import SummaryScreen
from tests.tui.helpers import (
    LARGE,
    SMALL,
    answer,
    answer_until_downloading,
    from_palette,
    make_app,
    shown_text,
    until,
    wait_for,
    wait_for_main,
    walk,
)

SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])


def world(directory: Path) -> dict:
    return json.loads((directory / "world" / "world.json").read_text())


def killed_mid_run(directory: Path) -> None:
    """A saved session whose run was killed: one step done, one left running."""
    from leviathan_tui.state import State

    state = State.load(directory)
    state.set_status("preflight.node", "done", summary="ok")
    state.set_status("storage.probe", "running")


def visible(screen, selector: str) -> bool:
    """The widget is drawn inside the terminal, not clipped away."""
    widget = screen.query_one(selector)
    region = widget.region
    size = screen.app.size
    return (
        widget.display
        and region.width > 0
        and region.height > 0
        and region.right <= size.width
        and region.bottom <= size.height
    )


@SIZES
async def test_walk_to_the_summary_with_keys_only(tmp_path: Path, size) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        seen = await walk(app, pilot)
        assert seen[0] == "PlanScreen" and seen[-1] == "SummaryScreen", seen
        assert seen.index("DeviceScreen") < seen.index("ConfirmFormatScreen")
        assert app.exit_code == 0
        order = app.events_seen
        assert order.index("StepDone:storage.format") < order.index("StepStarted:download.fetch")
        summary = app.summary_lines()
        assert "\n" not in summary["Try it"] and summary["Try it"].startswith("curl -s http://")
        assert "--dry-run" in summary["Replay"]
        assert "talosctl -n" in summary["Talos patch (keeps the disk mounted after a reboot)"]
        screen = app.screen
        assert isinstance(screen, SummaryScreen)
        await pilot.pause(0.3)
        body = screen.query_one("#summary-body")
        if size == SMALL:
            assert body.max_scroll_y > 0  # more than fits: it scrolls
            await pilot.press("end")
            await pilot.pause(0.1)
            assert body.scroll_y > 0
        await pilot.press("q")
    replay = yaml.safe_load((tmp_path / "replay.yaml").read_text())
    assert replay["answers"]["storage.device"] == "/dev/nvme1n1"
    assert replay["answers"]["storage.confirm_format"] == "nvme1n1"
    assert replay["answers"]["ssh.host_key"].startswith("SHA256:")
    assert replay["answers"]["storage.device_serial"] == "S64HNE0R812345"


@SIZES
async def test_the_plan_comes_first_and_nothing_changes_before_start(tmp_path: Path, size) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = await wait_for(app, pilot, PlanScreen)
        await until(pilot, lambda: screen.complete, 10)
        topics = {line.topic for line in screen.lines}
        assert {"cluster", "node", "namespace", "build host", "model", "engine", "ETA"} <= topics
        assert visible(screen, "#plan-start") and visible(screen, "#plan-quit")
        assert world(tmp_path)["namespaces"] == {}  # read-only so far
        assert not (tmp_path / "state.json").exists()
        await pilot.press("q")
    assert world(tmp_path)["formats"] == []


async def test_start_waits_until_the_plan_is_shown(tmp_path: Path, monkeypatch) -> None:
    import threading

    import leviathan_tui.phases.survey as survey_module

    gate = threading.Event()
    read = survey_module.survey

    def slow_survey(*args, **kwargs):
        gate.wait(30)
        yield from read(*args, **kwargs)

    monkeypatch.setattr(survey_module, "survey", slow_survey)
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        screen = await wait_for(app, pilot, PlanScreen)
        await pilot.press("enter")  # an impatient Enter while the plan is read
        await pilot.pause(0.3)
        assert app.screen is screen and not app.engine_running
        gate.set()
        await until(pilot, lambda: screen.complete, 10)
        await pilot.press("enter")
        await until(pilot, lambda: app.engine_running, 5)
        assert app.engine_running


@SIZES
async def test_confirmations_cannot_trap_and_esc_goes_back(tmp_path: Path, size) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await wait_for(app, pilot, PlanScreen)
        while not isinstance(app.screen, DeviceScreen):
            await answer(app, pilot, app.screen, "")
            await pilot.pause(0.05)
        device = await wait_for(app, pilot, DeviceScreen)
        assert app.phase_switcher.current == "pane-storage"  # the asking step's pane behind it
        device.query_one("#devices").move_cursor(row=1)
        await pilot.press("enter")
        confirm = await wait_for(app, pilot, ConfirmFormatScreen)
        await until(pilot, lambda: app.focused is not None, 5)  # focus is set once it is mounted
        assert app.focused is confirm.query_one("#confirm-answer")  # focus in the input
        assert "nvme1n1" in str(confirm.query_one("#confirm-expected").render())  # shown as text
        assert not confirm.query_one("#confirm-answer").placeholder
        await pilot.press("enter")  # Enter first: nothing typed, nothing happens but a reason
        assert app.screen is confirm
        assert "no answer" in str(confirm.query_one("#confirm-error").render())
        await pilot.press(*"nvme2n1", "enter")  # the wrong name stays, with the reason
        assert app.screen is confirm
        assert "nvme1n1" in str(confirm.query_one("#confirm-error").render())
        await pilot.press("tab", *"nvme", "tab", *"1n1")  # Tab does not take the typing away
        assert not str(confirm.query_one("#confirm-error").render()).strip()  # typing clears it
        assert confirm.query_one("#confirm-answer").value == "nvme1n1"
        assert app.focused is confirm.query_one("#confirm-answer")
        confirm.query_one("#confirm-answer").value = ""
        await pilot.press("escape")  # back to the disk list, not a failed run
        await wait_for(app, pilot, DeviceScreen)
        assert "StepFailed:storage.format" not in app.events_seen
        await pilot.press("escape")  # and back to the plan
        plan = await wait_for(app, pilot, PlanScreen)
        await until(
            pilot,
            lambda: any("paused: back to the plan" in text for _, text, _ in app.log_pane.lines),
            5,
        )
        assert any("paused: back to the plan" in text for _, text, _ in app.log_pane.lines)
        assert not any("exit 130" in text for _, text, _ in app.log_pane.lines)  # not an error
        await pilot.pause(0.2)
        painted = shown_text(plan.query_one("#plan-lines"))
        assert "reading the cluster" not in painted  # the plan read before is shown again
        await until(
            pilot, lambda: not plan.rereading, 10
        )  # then read anew: the run labelled the namespace meanwhile
        painted = shown_text(plan.query_one("#plan-lines"))
        assert "already allows privileged pods" in painted and "reading again" not in painted
        await pilot.press("escape")  # an impatient second Esc does not quit
        await pilot.pause(0.2)
        assert app.is_running and app.screen is plan
        assert world(tmp_path)["formats"] == []
        assert "StepFailed:storage.format" not in app.events_seen
        assert app.state.get(DataDisk) is None  # nothing was confirmed: nothing recorded
        await pilot.press("enter")  # Start again: the disk is asked again, never reused silently
        for _ in range(1200):
            if isinstance(app.screen, DeviceScreen):
                break
            if isinstance(app.screen, QuestionScreen):
                await pilot.press("ctrl+y")  # the build host's key may come first
            await pilot.pause(0.05)
        assert isinstance(app.screen, DeviceScreen)
        await pilot.press("q")


@SIZES
async def test_the_host_key_question_can_be_put_aside_and_answered_later(
    tmp_path: Path, size
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await wait_for(app, pilot, PlanScreen)
        for _ in range(1200):  # the disk questions may come first; the host key's turn comes
            if isinstance(app.screen, QuestionScreen):
                break
            await answer(app, pilot, app.screen, "/dev/nvme1n1")
            await pilot.pause(0.05)
        question = app.screen
        assert isinstance(question, QuestionScreen) and question.question.id == "ssh.host_key"
        await pilot.pause(0.3)
        assert visible(question, "#question-answer") and visible(question, "#question-keys")
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert app.step_list.status("build.image") == "waiting"
        assert "StepFailed:build.image" not in app.events_seen
        for _ in range(1200):  # the disk questions, if they are still to come, are answered first
            if "StepDone:storage.format" in app.events_seen and app.screen is app.screen_stack[0]:
                break
            await answer(app, pilot, app.screen, "/dev/nvme1n1")
            await pilot.pause(0.05)
        assert "StepDone:storage.format" in app.events_seen and app.screen is app.screen_stack[0]
        await pilot.press("a")
        again = await wait_for(app, pilot, QuestionScreen)
        assert again.question.id == "ssh.host_key"
        await pilot.press("q", "enter")  # a wrong answer stays, with its reason
        assert app.screen is again and str(again.query_one("#question-error").render()).strip()
        await pilot.press("x")  # typing anew clears the reason
        assert not str(again.query_one("#question-error").render()).strip()
        await pilot.press("ctrl+y")
        await until(pilot, lambda: "StepDone:build.image" in app.events_seen, 20)
        assert "StepDone:build.image" in app.events_seen
        await pilot.press("q")


@SIZES
async def test_resume_dialog_is_whole_and_tab_enter_starts_over_visibly(
    tmp_path: Path, size
) -> None:
    killed_mid_run(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = await wait_for(app, pilot, ResumeScreen)
        for selector in ("#resume-title", "#resume-explain", "#resume", "#start-over"):
            assert visible(screen, selector), selector
        steps = str(screen.query_one("#resume-steps").render())
        assert "interrupted (goes on): storage.probe" in steps
        assert "done: preflight.node" in steps and "deploy.health" in steps
        assert app.focused.id == "resume"
        # the main layout, mounted under the dialog after its first paint, is drawn behind it
        await wait_for_main(app, pilot)
        await until(pilot, lambda: app.step_list.region.height, 3)
        assert app.step_list.region.height > 0 and app.screen is screen
        await pilot.press("tab", "enter")
        await wait_for(app, pilot, PlanScreen)
        await until(pilot, lambda: any("started over" in t for _, t, _ in app.log_pane.lines), 5)
        assert any("started over" in line for _, line, _ in app.log_pane.lines)
        await pilot.press("q")


async def test_esc_on_the_resume_dialog_of_an_interrupted_session_exits_130(
    tmp_path: Path,
) -> None:
    killed_mid_run(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(app, pilot, ResumeScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not app.is_running, 5)
    assert app.return_value == 130  # as q on the plan of the same session


@SIZES
async def test_quit_while_work_runs_says_what_keeps_running(tmp_path: Path, size) -> None:
    app = make_app(tmp_path, speed=1.0)
    async with app.run_test(size=size) as pilot:
        await answer_until_downloading(app, pilot)
        await pilot.press("ctrl+q")  # like q: asks first
        quit_screen = await wait_for(app, pilot, QuitScreen)
        text = str(quit_screen.query_one("#quit-running").render())
        assert "download" in text and "--dry-run" in text
        assert visible(quit_screen, "#stop") and app.focused.id == "stay"
        await pilot.press("enter")  # Enter stays
        assert not isinstance(app.screen, QuitScreen) and app.engine_running
        assert not app.check_action("verify_again", ())  # not offered while the steps run
        stop = size == SMALL
        if stop:  # the palette's Quit asks too, then "Stop it and quit"
            await from_palette(app, pilot, "Quit")
        else:
            await pilot.press("q")
        await wait_for(app, pilot, QuitScreen)
        if stop:
            await pilot.click("#stop")
        else:
            await pilot.press("ctrl+c")  # asked twice: quit and let it run
        await until(pilot, lambda: not app.is_running, 60)
    assert app.return_value == 130
    from leviathan_tui.state import State

    assert State.load(tmp_path).status("download.fetch") == "interrupted"
    if stop:
        assert app.stopped is not None and any("fetch" in item for item in app.stopped)
    else:
        assert app.stopped is None


async def test_a_quit_dialog_open_when_the_run_ends_closes_and_q_then_quits(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, speed=1.0)
    async with app.run_test(size=SMALL) as pilot:
        await answer_until_downloading(app, pilot)
        await pilot.press("q")
        await wait_for(app, pilot, QuitScreen)
        app.engine.cancel()  # the run ends while the dialog says it keeps running
        await until(
            pilot, lambda: not app.engine_running and not isinstance(app.screen, QuitScreen), 20
        )
        assert not app.engine_running and not isinstance(app.screen, QuitScreen)
        assert app.is_running  # nothing was chosen: the session stays
        await pilot.press("q")  # nothing runs now: q quits at once
        await until(pilot, lambda: not app.is_running, 5)
    assert app.return_value == 130  # the run was interrupted


async def test_logs_per_step_search_by_step_id_wrap_and_saved_with_timestamps(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=LARGE) as pilot:
        await walk(app, pilot)
        await pilot.press("escape")  # from the summary back to the steps
        await pilot.pause(0.2)
        pane = app.log_pane
        assert not app.check_action("answer_pending", ())  # no question waits: `a` not offered
        app.step_list.focus()
        await pilot.press("e")  # the log's keys work with the focus on the steps
        await pilot.pause(0.1)
        assert pane.errors_only
        pane.action_toggle_errors()
        assert not pane.errors_only
        app.step_list.highlighted = [s.id for s in app.steps].index("storage.probe")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert pane.step == "storage.probe"
        assert app.phase_switcher.current == "pane-storage"  # the operator's choice
        pane.query_one("#log").focus()
        await pilot.press("w")
        assert pane.wrap
        pane.step = ""
        await pilot.press("slash", *"build.push", "enter")
        await pilot.pause(0.1)
        assert pane.search == "build.push"
        assert [e for e in pane.entries if pane._visible(e)]
        pane.action_toggle_errors()  # errors only, within that search: nothing matches
        await pilot.pause(0.1)
        assert not [e for e in pane.entries if pane._visible(e)]
        assert "no line matches" in "".join(s.text for s in pane.query_one("#log").lines)
        path = pane.save()
        first = path.read_text().splitlines()[0].split("\t")
        assert first[0][:2] == "20" and "T" in first[0] and first[1]  # timestamp, step id
        app.step_list.focus()
        await pilot.press("x")  # every line again: the search and errors-only are cleared too
        await pilot.pause(0.1)
        assert pane.search == "" and pane.step == "" and not pane.errors_only
        assert app.check_action("verify_again", ())  # nothing runs: `v` is offered
        await pilot.press("v")
        await until(pilot, lambda: any("verify again:" in text for _, text, _ in pane.lines), 30)
        await pilot.pause(0.3)
        assert any("verify again: every model file matches" in t for _, t, _ in pane.lines)
        assert not isinstance(app.screen, SummaryScreen)  # a verify is not a new bring-up
        pane.show_step("storage.probe")  # a filter that would hide the patch
        app.show_talos_patch()
        pane.flush()
        assert pane.step == "" and any(t.startswith("Talos patch:") for _, t, _ in pane.lines)
        app.check_health_now()
        await until(
            pilot, lambda: any("health check now:" in text for _, text, _ in pane.lines), 10
        )
        assert any("health check now: HEALTHY" in text for _, text, _ in pane.lines)
        await from_palette(app, pilot, "Show the summary")
        await wait_for(app, pilot, SummaryScreen)  # the summary can be opened again
        await pilot.press("escape")
        await pilot.pause(0.2)
        await pilot.press("q")


async def test_download_panel_lists_every_file_from_the_start(tmp_path: Path) -> None:
    app = make_app(tmp_path, speed=1.0)
    async with app.run_test(size=LARGE) as pilot:
        for _ in range(2400):
            await answer(app, pilot, app.screen, "/dev/nvme1n1")
            await pilot.pause(0.05)
            if "FilesPlanned:download.fetch" in app.events_seen:
                break
        assert "FilesPlanned:download.fetch" in app.events_seen
        panel = app.download_panel
        await until(pilot, lambda: len(panel.states) == 14, 5)
        assert len(panel.states) == 14  # 9 shards + 5 config files, before any byte
        table = panel.query_one("#dl-files")
        assert table.row_count == 14
        await pilot.press("ctrl+q")
        await wait_for(app, pilot, QuitScreen)
        await pilot.click("#leave")
        await pilot.pause(0.5)


async def test_after_a_failed_build_the_wizard_offers_llamacpp(tmp_path: Path) -> None:
    from leviathan_tui.config import Config

    config = Config.model_validate({"build": {"dockerfile": str(tmp_path / "missing.Dockerfile")}})
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=SMALL) as pilot:
        offer = None
        for _ in range(2400):
            screen = app.screen
            if (
                isinstance(screen, QuestionScreen)
                and screen.question.id == "deploy.fallback_engine"
            ):
                offer = screen
                break
            await answer(app, pilot, screen, "/dev/nvme1n1")
            await pilot.pause(0.05)
        assert offer is not None, app.events_seen[-5:]
        assert "StepFailed:build.image" in app.events_seen
        await pilot.pause(0.2)
        await pilot.press(*"llamacpp", "enter")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), 90)
        assert isinstance(app.screen, SummaryScreen), app.events_seen[-6:]
        assert app.state.status("deploy.health") == "done"
        await pilot.press("q")
    replay = yaml.safe_load((tmp_path / "replay.yaml").read_text())
    assert replay["answers"]["deploy.fallback_engine"] == "llamacpp"


async def test_a_swapped_disk_is_refused_in_the_tui_without_asking_or_formatting(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await walk(app, pilot)
        await pilot.press("q")
    world_file = tmp_path / "world" / "world.json"
    data = json.loads(world_file.read_text())
    for dev in data["machine"]["blockdevices"]:
        if dev["path"] == "/dev/nvme1n1":
            dev["serial"] = "S64HNE0R8SWAP"
    data["disks"].pop("/dev/nvme1n1", None)
    data["mounts"].clear()
    world_file.write_text(json.dumps(data))
    again = make_app(tmp_path)
    async with again.run_test(size=SMALL) as pilot:
        await wait_for(again, pilot, ResumeScreen)
        await pilot.press("enter")  # Resume
        for _ in range(1200):
            if "StepFailed:storage.format" in again.events_seen:
                break
            assert not isinstance(again.screen, DeviceScreen | ConfirmFormatScreen)
            await answer(again, pilot, again.screen, "/dev/nvme1n1")
            await pilot.pause(0.05)
        assert "StepFailed:storage.format" in again.events_seen
        await pilot.pause(0.3)  # the log pane paints in batches
        errors = [line for _, line, level in again.log_pane.lines if level == "error"]
        assert any("not the recorded data disk" in line for line in errors), errors
        await pilot.press("q")
    assert [f["device"] for f in json.loads(world_file.read_text())["formats"]] == ["/dev/nvme1n1"]


async def test_wrapped_log_lines_fit_the_pane_at_80x24_and_follow_a_resize(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    app.show_plan = lambda: None  # the main screen alone
    async with app.run_test(size=SMALL) as pilot:
        await wait_for_main(app, pilot)
        pane = app.log_pane
        log = pane.query_one("#log")
        pane.add("download.fetch", "skipped, already done: all 14 files " + "word " * 40)
        pane.flush()
        await pilot.press("w")
        await pilot.pause(0.2)

        def widths() -> tuple[int, int]:
            return max(
                strip.cell_length for strip in log.lines
            ), log.scrollable_content_region.width

        widest, room = widths()
        assert pane.wrap and widest <= room < 78, (widest, room)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.3)
        widest, room = widths()
        assert widest <= room and widest > 78, (widest, room)  # wrapped again, wider


async def test_the_palettes_screenshot_is_saved_beside_the_logs_without_a_downloads_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"  # a server account: no ~/Downloads
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    state_dir = tmp_path / "state"
    app = make_app(state_dir)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(app, pilot, PlanScreen)
        await from_palette(app, pilot, "Screenshot")
        await until(pilot, lambda: list(state_dir.glob("*.svg")), 10)
        # the file is created before it is written; the notice comes once it is complete
        await until(pilot, lambda: any(".svg" in str(n.message) for n in app._notifications), 10)
        notices = [n.message for n in app._notifications]
        await pilot.press("q")
    shots = list(state_dir.glob("*.svg"))
    assert len(shots) == 1 and "<svg" in shots[0].read_text()
    assert any(str(shots[0]) in message for message in notices), notices
    assert not (home / "Downloads").exists()


async def test_back_from_the_confirmation_keeps_the_disk_highlighted_and_its_pane_behind(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=LARGE) as pilot:
        await wait_for(app, pilot, PlanScreen)
        while not isinstance(app.screen, DeviceScreen):
            await answer(app, pilot, app.screen, "")
            await pilot.pause(0.05)
        first = await wait_for(app, pilot, DeviceScreen)
        await pilot.pause(0.1)
        first.query_one("#devices").move_cursor(row=2)  # nvme2n1, not the first usable one
        await pilot.press("enter")
        await wait_for(app, pilot, ConfirmFormatScreen)
        await pilot.press("escape")
        device = await wait_for(app, pilot, DeviceScreen)  # asked again, with a new disk list
        # a step of another phase starting meanwhile leaves the pane behind the question alone
        app.post_message(EngineEvent(StepStarted("build.image", "Build the engine image")))
        await pilot.pause(0.1)
        assert app.phase_switcher.current == "pane-storage"
        table = device.query_one("#devices")
        assert table.cursor_row == 2
        assert "nvme2n1" in str(app.screen.query_one("#device-why").render())
        assert world(tmp_path)["formats"] == [] and app.state.get(DataDisk) is None
        await pilot.press("q")  # q on the disk list asks, as on the main screen
        await wait_for(app, pilot, QuitScreen)
        await pilot.press("q")  # asked again: quit
        await until(pilot, lambda: not app.is_running, 30)
    assert app.return_value == 130


async def test_the_plan_of_a_resumed_session_names_the_build_left_running(tmp_path: Path) -> None:
    from leviathan_tui.records import BuildJob
    from leviathan_tui.state import State

    st = State.load(tmp_path)
    st.publish("build.image", BuildJob("b-1", "/var/tmp/leviathan-build/b-1"))
    st.set_status("build.image", "interrupted")
    st.flush()
    app = make_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(app, pilot, ResumeScreen)
        await pilot.press("enter")  # Resume
        plan = await wait_for(app, pilot, PlanScreen)
        await until(pilot, lambda: plan.complete, 10)
        painted = shown_text(plan.query_one("#plan-lines"))
        assert "the image build on" in painted and "/var/tmp/leviathan-build/b-1" in painted
        assert "may still be running; Start reattaches to it" in painted
        await pilot.press("q")  # quitting names what may still run and offers to stop it
        quit_screen = await wait_for(app, pilot, QuitScreen)
        assert "image build" in shown_text(quit_screen.query_one("#quit-running"))
        await pilot.press("escape")  # Stay: back to the plan
        await wait_for(app, pilot, PlanScreen)
        await pilot.press("q")
        await wait_for(app, pilot, QuitScreen)
        await pilot.click("#stop")
        await until(pilot, lambda: not app.is_running, 60)
    assert app.return_value == 130 and app.stopped is not None


async def test_the_quit_dialog_follows_what_finishes_behind_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, speed=1.0)
    async with app.run_test(size=LARGE) as pilot:
        await answer_until_downloading(app, pilot)
        await pilot.press("ctrl+q")
        quit_screen = await wait_for(app, pilot, QuitScreen)
        assert "download" in shown_text(quit_screen.query_one("#quit-running"))
        # the download finishes while the dialog is up
        app.post_message(EngineEvent(StepDone("download.fetch", "14 files verified")))
        running = quit_screen.query_one("#quit-running")
        await until(pilot, lambda: "download" not in shown_text(running), 5)
        assert "download" not in shown_text(quit_screen.query_one("#quit-running"))
        await pilot.press("q")  # asked twice: quit
        await until(pilot, lambda: not app.is_running, 20)
    assert app.return_value == 130


@pytest.mark.parametrize("bytes_per_tick", [2_500_000, 25_000_000, 400_000_000])
async def test_a_downloading_row_fits_the_pane_at_80x24(
    tmp_path: Path, bytes_per_tick: int
) -> None:
    app = make_app(tmp_path)
    app.show_plan = lambda: None  # the main screen alone
    name = "DeepSeek-V3-Q4_K_M-00002-of-00009.gguf"
    async with app.run_test(size=SMALL) as pilot:
        await wait_for_main(app, pilot)
        app.post_message(EngineEvent(StepStarted("download.fetch", "Download")))
        app.post_message(EngineEvent(FilesPlanned("download.fetch", ((name, 44_936_095_334),))))
        app.show_phase("download")
        done = 12_000_000_000
        for _ in range(12):  # about 25 MB/s, 250 MB/s and 4 GB/s
            done += bytes_per_tick
            event = FileProgress("download.fetch", name, done, 44_936_095_334, "downloading")
            app.post_message(EngineEvent(event))
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        table = app.download_panel.query_one("#dl-files")
        speed, eta = table.get_row(name)[3:]
        assert speed.endswith("/s") and eta != "-"
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no column cut
        await pilot.press("q")
