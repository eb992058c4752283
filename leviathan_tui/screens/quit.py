"""Quitting while work runs: say what keeps running on the node or the build host, and offer to
stop it. Stay is focused, so Enter never quits by accident."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class QuitScreen(ModalScreen[str]):
    """Dismisses with "stay", "leave" (quit, work goes on) or "stop" (stop it, then quit)."""

    CSS_PATH = "quit.tcss"
    BINDINGS = [
        Binding("escape", "stay", "Stay"),
        Binding("q", "app.quit_app", "Quit, let it run"),  # asked twice: quit
    ]

    def __init__(self, running: list[str], resume_command: str) -> None:
        super().__init__()
        self.running = running
        self.resume_command = resume_command

    def _text(self) -> str:
        lines = ["The session is saved. When you quit:"]
        lines += [f"  • {item}" for item in self.running] or ["  • nothing"]
        return "\n".join([*lines, "", f"Resume later with: {self.resume_command}"])

    def show_running(self, running: list[str]) -> None:
        """What goes on changed while the dialog is up (a build finished behind it)."""
        self.running = running
        for widget in self.query("#quit-running"):
            widget.update(self._text())

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="quit-dialog"):
            yield Static("Quit Leviathan?", id="quit-title")
            yield Static(self._text(), id="quit-running")
            with Horizontal(id="quit-buttons"):
                yield Button("Stay", id="stay", variant="primary")
                yield Button("Quit, let it run", id="leave")
                yield Button("Stop it and quit", id="stop", variant="warning")
        yield Footer()

    def on_mount(self) -> None:
        for widget in self.query("#stay"):  # none if closed before it was mounted
            widget.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_stay(self) -> None:
        self.dismiss("stay")
