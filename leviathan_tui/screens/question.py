"""A text question: a host key to accept, a risk to accept, a passphrase. Enter submits what
was typed; Esc puts the question aside (the step waits; `a` on the main screen brings it back)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from leviathan_tui.events import Question
from leviathan_tui.screens import LATER


class QuestionScreen(ModalScreen[str]):
    CSS_PATH = "question.tcss"
    BINDINGS = [
        Binding("escape", "later", "Answer later"),
        Binding("ctrl+y", "accept", "Accept the key shown"),
    ]

    def __init__(self, question: Question) -> None:
        super().__init__()
        self.question = question

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.question.presented) if action == "accept" else True

    def compose(self) -> ComposeResult:
        q = self.question
        with VerticalScroll(id="question-dialog"):
            yield Static(f"{q.step_id or 'leviathan'} asks ({q.id})", id="question-id")
            yield Static(q.prompt, id="question-prompt")
            if q.presented:
                yield Static(Text(q.presented, style="bold"), id="question-presented")
            elif q.expected:
                yield Static(
                    Text.assemble("Type exactly: ", (q.expected, "bold reverse")),
                    id="question-expected",
                )
            for risk in q.risks:
                yield Static(f"• {risk}", classes="question-risk")
            yield Input(password=q.secret, id="question-answer")
            yield Static("", id="question-error")
            keys = "Enter: submit · Esc: answer later"
            if q.presented:
                keys += " · Ctrl+Y: accept the key shown"
            yield Static(keys, id="question-keys")
        yield Footer()

    def on_mount(self) -> None:
        for box in self.query(
            "#question-dialog"
        ):  # Tab must not take the typing away from the input
            box.can_focus = False
        for widget in self.query(Input):  # none if closed before it was mounted
            widget.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value:  # typing anew: the reason shown was about the last answer
            self.query_one("#question-error", Static).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._try(event.value)

    def action_accept(self) -> None:
        self._try(self.question.presented or "")

    def _try(self, value: str) -> None:
        answer = value if self.question.secret else value.strip()
        problem = self.question.check(answer)
        if problem:
            self.query_one("#question-error", Static).update(problem)
            return
        self.dismiss(answer)

    def action_later(self) -> None:
        self.dismiss(LATER)
