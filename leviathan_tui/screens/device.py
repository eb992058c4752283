"""Choose the data disk: every device is listed; unsafe ones are shown with the reason and
cannot be chosen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from leviathan_tui.events import Question
from leviathan_tui.units import human_size


class DeviceScreen(ModalScreen[str | None]):
    CSS_PATH = "device.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "choose", "Choose", show=True),
    ]

    def __init__(self, question: Question) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question.prompt, id="title")
            table: DataTable[str] = DataTable(id="devices", cursor_type="row", zebra_stripes=True)
            table.add_columns(
                "device",
                "size",
                "model",
                "serial",
                "tran",
                "rot",
                "fs / label",
                "mounted",
                "status",
            )
            for choice in self.question.choices:
                d = choice.device
                assert d is not None
                status = (
                    "ours: mount only"
                    if d.ours
                    else ("OK" if choice.selectable else f"unsafe: {choice.reason}")
                )
                fs = (d.fstype or "-") + (f" / {d.label}" if d.label else "")
                table.add_row(
                    choice.value,
                    human_size(d.size),
                    (d.model or "-")[:20],
                    d.serial or "-",
                    d.transport or "-",
                    "yes" if d.rotational else "no",
                    fs,
                    (", ".join(d.mounts) or "-")[:16],
                    status,
                    key=choice.value,
                )
            yield table
            yield Static("", id="why")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.focus()
        for index, choice in enumerate(self.question.choices):
            if choice.selectable:
                table.move_cursor(row=index)
                break

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        choice = self.question.choices[event.cursor_row]
        why = self.query_one("#why", Static)
        if not choice.selectable:
            why.update(f"{choice.value} cannot be chosen: {choice.reason}")
        elif choice.device and choice.device.foreign:
            why.update(
                f"{choice.value} holds {choice.device.foreign}: formatting it needs a second confirmation"
            )
        else:
            why.update(f"{choice.value}: {choice.label}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._choose(event.cursor_row)

    def action_choose(self) -> None:
        self._choose(self.query_one(DataTable).cursor_row)

    def _choose(self, row: int) -> None:
        choice = self.question.choices[row]
        if not choice.selectable:
            self.notify(f"{choice.value} cannot be chosen: {choice.reason}", severity="error")
            return
        self.dismiss(choice.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
