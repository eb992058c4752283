"""Drive the real app with Pilot through the dry-run world."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from leviathan_tui.app import LeviathanApp
from leviathan_tui.backends import dry_backends
from leviathan_tui.config import Config
from leviathan_tui.screens.confirm import ConfirmFormatScreen
from leviathan_tui.screens.device import DeviceScreen
from leviathan_tui.screens.question import QuestionScreen
from leviathan_tui.screens.summary import SummaryScreen
from leviathan_tui.state import State


def make_app(directory: Path, speed: float = 8.0) -> LeviathanApp:
    config = Config()
    return LeviathanApp(
        config=config,
        state=State.load(directory),
        backends=dry_backends(config, speed=speed),
        only=None,
        directory=directory,
        dry_run=True,
    )


async def walk(
    app: LeviathanApp, pilot, device: str = "/dev/nvme1n1", max_steps: int = 600
) -> list[str]:
    """Answer every screen like an operator; return the screens seen, in order."""
    seen: list[str] = []
    for _ in range(max_steps):
        await pilot.pause(0.05)
        screen = app.screen
        name = type(screen).__name__
        if not seen or seen[-1] != name:
            seen.append(name)
        try:
            await _answer(app, pilot, screen, device)
        except NoMatches:  # the screen is still composing; look again
            continue
        if isinstance(screen, SummaryScreen):
            break
    return seen


async def _answer(app: LeviathanApp, pilot, screen: Screen, device: str) -> None:
    if True:
        if isinstance(screen, DeviceScreen):
            table = screen.query_one("#devices")
            row = [c.value for c in screen.question.choices].index(device)
            table.move_cursor(row=row)
            await pilot.press("enter")
        elif isinstance(screen, ConfirmFormatScreen):
            q = screen.question
            assert app.focused is not None and app.focused.id == "cancel"
            screen.query_one("#answer").value = q.placeholder
            await pilot.pause(0.05)
            await pilot.click("#confirm")
        elif isinstance(screen, QuestionScreen):
            if screen.question.presented:
                await pilot.click("#accept")


class ScreenHost(App[None]):
    """Shows one screen on its own, for snapshots."""

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self._screen = screen

    def compose(self) -> ComposeResult:
        yield Static("")

    def on_mount(self) -> None:
        self.push_screen(self._screen)
