"""First screen when a saved session exists: Resume or Start over."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ResumeScreen(ModalScreen[str]):
    CSS_PATH = "resume.tcss"
    BINDINGS = [("escape", "resume", "Resume")]

    def __init__(self, summary: list[str], updated_at: str) -> None:
        super().__init__()
        self.summary = summary
        self.updated_at = updated_at

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"A saved session exists (last change {self.updated_at}).", id="title")
            yield Static("\n".join(self.summary) or "(no step finished yet)", id="steps")
            yield Static(
                "Resume re-checks every finished step and goes on from there. Start over forgets the session (nothing on the cluster changes).",
                id="explain",
            )
            with Horizontal(id="buttons"):
                yield Button("Resume", id="resume", variant="primary")
                yield Button("Start over", id="start-over", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#resume", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("start-over" if event.button.id == "start-over" else "resume")

    def action_resume(self) -> None:
        self.dismiss("resume")
