"""Drive the real app with Pilot through the dry-run world, as an operator would: keys only."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from leviathan_tui.app import LeviathanApp
from leviathan_tui.config import Config
from leviathan_tui.dryrun import dry_backends
from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.device import DeviceScreen
from leviathan_tui.screens.plan import PlanScreen
from leviathan_tui.screens.question import QuestionScreen
from leviathan_tui.screens.summary import SummaryScreen
from leviathan_tui.state import State

SMALL = (80, 24)
LARGE = (120, 40)


def make_app(
    directory: Path, speed: float = 20.0, config: Config | None = None, machine: dict | None = None
) -> LeviathanApp:
    config = config or Config()
    return LeviathanApp(
        config=config,
        state=State.load(directory),
        backends=dry_backends(config, directory, machine, speed=speed),
        only=None,
        directory=directory,
        dry_run=True,
        resume_command=f"leviathan --dry-run --state-dir {directory.parent}",
    )


def shown_text(widget: Static, width: int = 200) -> str:
    """The text a Static shows, whether it holds a string or a Rich renderable (a table)."""
    content = widget.content
    if isinstance(content, str):
        return content
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


async def until(pilot, condition: Callable[[], object], limit_s: float) -> None:
    """Let the app run until `condition()` holds or `limit_s` has passed; the caller asserts."""
    for _ in range(int(limit_s / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)


async def from_palette(app: LeviathanApp, pilot, text: str) -> None:
    """Type `text` into the command palette and press Enter once its search shows that command
    highlighted: the search runs in a worker, and an Enter before it has a hit does nothing."""
    from textual.command import CommandList, CommandPalette

    await pilot.press("ctrl+p", *text)

    def found() -> bool:
        palette = app.screen
        if not isinstance(palette, CommandPalette) or not palette.query(CommandList):
            return False
        hits = palette.query_one(CommandList)
        if hits.highlighted is None or not hits.option_count:
            return False
        return text.lower() in str(hits.get_option_at_index(hits.highlighted).prompt).lower()

    await until(pilot, found, 15)
    assert found(), f"the palette shows no {text!r}"
    await pilot.press("enter")


async def wait_for(app: LeviathanApp, pilot, kind: type, limit_s: float = 60.0) -> Screen:
    for _ in range(int(limit_s / 0.05)):
        if isinstance(app.screen, kind) and app.screen.is_mounted:
            return app.screen
        await pilot.pause(0.05)
    raise AssertionError(f"{kind.__name__} never came; on {type(app.screen).__name__}")


async def wait_for_main(app: LeviathanApp, pilot, limit_s: float = 10.0) -> None:
    """The main layout is mounted under the first dialog once that dialog has painted."""
    for _ in range(int(limit_s / 0.05)):
        if app.main_ready:
            return
        await pilot.pause(0.05)
    raise AssertionError("the main layout was never mounted")


async def walk(
    app: LeviathanApp, pilot, device: str = "/dev/nvme1n1", max_steps: int = 2400
) -> list[str]:
    """Answer every screen like an operator, with keys; return the screens seen, in order."""
    seen: list[str] = []
    for _ in range(max_steps):
        await pilot.pause(0.05)
        screen = app.screen
        name = type(screen).__name__
        if not seen or seen[-1] != name:
            seen.append(name)
        await answer(app, pilot, screen, device)
        if isinstance(screen, SummaryScreen):
            break
    return seen


async def answer_until_downloading(app: LeviathanApp, pilot, device: str = "/dev/nvme1n1") -> None:
    """Start from the plan and answer every question until the download runs, on the main screen."""
    await wait_for(app, pilot, PlanScreen)
    for _ in range(1200):
        await answer(app, pilot, app.screen, device)
        await pilot.pause(0.05)
        on_main = app.screen is app.screen_stack[0] and not app._questions
        if on_main and app.step_list.status("download.fetch") == "running":
            return
    raise AssertionError("the download never started")


async def answer(app: LeviathanApp, pilot, screen: Screen, device: str) -> None:
    """One operator's answer to the screen shown; nothing while it is still composing."""
    try:
        await _answer(app, pilot, screen, device)
    except NoMatches:
        pass


async def _answer(app: LeviathanApp, pilot, screen: Screen, device: str) -> None:
    if isinstance(screen, PlanScreen):
        if screen.complete:
            await pilot.press("enter")
    elif isinstance(screen, DeviceScreen):
        table = screen.query_one("#devices")
        row = [c.value for c in screen.question.choices].index(device)
        table.move_cursor(row=row)
        await pilot.press("enter")
    elif isinstance(screen, ConfirmFormatScreen):
        if app.focused is None or app.focused.id != "confirm-answer":
            return  # still mounting: the focus comes to its input in a moment; asked again then
        await pilot.press(*screen.question.expected, "enter")
    elif isinstance(screen, QuestionScreen):
        if screen.question.presented:
            await pilot.press("ctrl+y")


class ScreenHost(App[None]):
    """Shows one screen on its own, for snapshots."""

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self._screen = screen

    def compose(self) -> ComposeResult:
        yield Static("")

    def on_mount(self) -> None:
        self.push_screen(self._screen)
