"""A text question: a host key fingerprint to accept, a risk to accept, a passphrase."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from leviathan_tui.events import Question


class QuestionScreen(ModalScreen[str | None]):
    CSS_PATH = "question.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: Question) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        secret = self.question.secret
        with Vertical(id="dialog"):
            yield Static(self.question.id, id="qid")
            yield Static(self.question.prompt, id="prompt")
            if self.question.presented:
                yield Static(self.question.presented, id="presented")
            yield Input(
                placeholder=self.question.placeholder if not secret else "",
                password=secret,
                id="answer",
            )
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                if self.question.presented:
                    yield Button("Accept", id="accept", variant="warning")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._try(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        elif event.button.id == "accept":
            self._try(self.question.presented or "")
        else:
            self._try(self.query_one(Input).value)

    def _try(self, value: str) -> None:
        problem = self.question.check(value if self.question.secret else value.strip())
        if problem:
            self.query_one("#error", Static).update(problem)
            return
        self.dismiss(value if self.question.secret else value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
