"""First screen when a saved session exists: Resume (focused) or Start over."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class ResumeScreen(ModalScreen[str]):
    """Dismisses with "resume", "start-over" or "quit"."""

    CSS_PATH = "resume.tcss"
    BINDINGS = [Binding("escape", "quit", "Quit"), Binding("q", "quit", "Quit")]

    def __init__(self, summary: list[str], updated_at: str) -> None:
        super().__init__()
        self.summary = summary
        self.updated_at = updated_at

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="resume-dialog"):
            yield Static(
                f"A saved session exists (last change {self.updated_at}).", id="resume-title"
            )
            yield Static("\n".join(self.summary) or "(no step finished yet)", id="resume-steps")
            yield Static(
                "Resume checks every finished step against the world and goes on from there. "
                "Start over forgets the session (nothing on the cluster or the disks changes).",
                id="resume-explain",
            )
            with Horizontal(id="resume-buttons"):
                yield Button("Resume", id="resume", variant="primary")
                yield Button("Start over", id="start-over", variant="warning")
        yield Footer()

    def on_mount(self) -> None:
        for widget in self.query("#resume"):  # none if closed before it was mounted
            widget.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("start-over" if event.button.id == "start-over" else "resume")

    def action_quit(self) -> None:
        self.dismiss("quit")
