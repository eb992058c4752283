"""The typed confirmation before a format: names device, model, serial, size and current
filesystem; Cancel is first and focused; Confirm works only when the device name is typed.
The second, louder variant guards a disk that holds someone else's filesystem."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from leviathan_tui.events import Question
from leviathan_tui.units import human_size


class ConfirmFormatScreen(ModalScreen[str | None]):
    CSS_PATH = "confirm.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: Question) -> None:
        super().__init__(classes="loud" if question.loud else "")
        self.question = question

    def compose(self) -> ComposeResult:
        d = self.question.device
        with Vertical(id="dialog"):
            yield Static(
                "DESTROY ALL DATA?" if self.question.loud else "Format this disk?",
                id="title",
            )
            facts = []
            if d is not None:
                facts = [
                    f"device      {d.path}",
                    f"model       {d.model or '-'}",
                    f"serial      {d.serial or '-'}",
                    f"size        {human_size(d.size)} ({d.size} bytes)",
                    f"filesystem  {d.fstype or 'none'}{' / ' + d.label if d.label else ''}",
                ]
                if d.foreign:
                    facts.append(f"holds       {d.foreign}")
            yield Static("\n".join(line for line in facts if not line.endswith("  ")), id="facts")
            yield Static(self.question.prompt, id="prompt")
            yield Input(placeholder=self.question.placeholder, id="answer")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Format", id="confirm", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = self.question.check(event.value) is not None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._try(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._try(self.query_one(Input).value)

    def _try(self, value: str) -> None:
        problem = self.question.check(value)
        if problem:
            self.query_one("#error", Static).update(problem)
            return
        self.dismiss(value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
