"""The typed confirmation before a format. It names device, model, serial, size and every
signature found; focus starts in the input; the expected name is printed as text; Enter submits
what was typed, and a wrong name stays here with the reason; Esc goes back to the disk list.
There is no button Enter could press by accident. The louder variant guards a disk that holds
someone else's filesystem."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from leviathan_tui.events import Question
from leviathan_tui.screens import BACK
from leviathan_tui.units import decimal_size, human_size


def facts_text(question: Question) -> Text:
    d = question.device
    text = Text()
    if d is None:
        return text
    rows = [
        ("device", d.path),
        ("model", d.model or "-"),
        ("serial", d.serial or "-"),
        ("size", f"{decimal_size(d.size)} ({human_size(d.size)}, {d.size} bytes)"),
        ("by-id", d.by_id[0] if d.by_id else "-"),
    ]
    found = list(d.signatures) or ["no filesystem, no partition table"]
    rows.append(("holds", found[0]))
    rows.extend(("", more) for more in found[1:])
    for i, (key, value) in enumerate(rows):
        if i:
            text.append("\n")
        text.append(f"{key:<8}", style="bold")
        text.append(value)
    return text


class ConfirmFormatScreen(ModalScreen[str]):
    CSS_PATH = "confirm.tcss"
    BINDINGS = [Binding("escape", "back", "Back to the disk list")]

    def __init__(self, question: Question) -> None:
        super().__init__(classes="loud" if question.loud else "")
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        with VerticalScroll(id="confirm-dialog"):
            yield Static(
                "DESTROY ALL DATA ON THIS DISK?" if q.loud else "Format this disk?",
                id="confirm-title",
            )
            yield Static(facts_text(q), id="confirm-facts")
            yield Static(q.prompt, id="confirm-prompt")
            yield Static(
                Text.assemble("Type exactly: ", (q.expected or "", "bold reverse")),
                id="confirm-expected",
            )
            yield Input(id="confirm-answer")
            yield Static("", id="confirm-error")
            yield Static(
                "Enter: format with what you typed · Esc: back to the disk list", id="confirm-keys"
            )
        yield Footer()

    def on_mount(self) -> None:
        for box in self.query(
            "#confirm-dialog"
        ):  # Tab must not take the typing away from the input
            box.can_focus = False
        for widget in self.query(Input):  # none if closed before it was mounted
            widget.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value:  # typing anew: the reason shown was about the last answer
            self.query_one("#confirm-error", Static).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self.question.check(event.value.strip())
        if problem:
            self.query_one("#confirm-error", Static).update(problem)
            event.input.value = ""
            return
        self.dismiss(event.value.strip())

    def action_back(self) -> None:
        self.dismiss(BACK)
