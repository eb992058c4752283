"""Choose the data disk. Every device is listed with whether it can hold the model; devices that
cannot be used show why and cannot be chosen. Esc goes back to the plan."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from leviathan_tui.events import Choice, Question
from leviathan_tui.screens import BACK
from leviathan_tui.units import decimal_size

COLUMNS = ("device", "size", "fits", "can it be used", "model", "serial", "holds", "by-id")


def _row(choice: Choice) -> tuple[str, ...]:
    d = choice.device
    assert d is not None
    fits = "?" if d.fits is None else ("yes" if d.fits else "NO")
    if d.ours and choice.selectable:
        usable = "ours: mounted, not formatted"
    elif choice.selectable:
        usable = "yes" + (" (erases it)" if d.foreign else "")
    else:
        usable = f"no: {choice.reason}"
    return (
        d.path,
        decimal_size(d.size),
        fits,
        usable,
        (d.model or "-")[:24],
        d.serial or "-",
        "; ".join(d.signatures) or "-",
        d.by_id[0] if d.by_id else "-",
    )


class DeviceScreen(ModalScreen[str]):
    CSS_PATH = "device.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back to the plan (pauses the run)"),
        Binding("enter", "choose", "Choose", show=True),
        Binding("q", "app.quit_app", "Quit"),  # as on the main screen: says what keeps running
    ]

    def __init__(self, question: Question) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="device-dialog"):
            yield Static(self.question.prompt, id="device-title")
            table: DataTable[str] = DataTable(id="devices", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            for choice in self.question.choices:
                table.add_row(*_row(choice), key=choice.value)
            yield table
            yield Static("", id="device-why")
        yield Footer()

    def on_mount(self) -> None:
        tables = self.query(DataTable)
        if not tables:  # closed before it was mounted (its run ended, or the app quit)
            return
        table = tables.first()
        table.focus()
        choices = self.question.choices
        preferred = next((i for i, c in enumerate(choices) if c.preselect), None)
        if preferred is None:
            preferred = next((i for i, c in enumerate(choices) if c.selectable), 0)
        table.move_cursor(row=preferred)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        choice = self.question.choices[event.cursor_row]
        d = choice.device
        why = self.query_one("#device-why", Static)
        if not choice.selectable:
            why.update(f"{choice.value} cannot be chosen: {choice.reason}")
        elif d is not None and d.ours:
            why.update(
                f"{choice.value} already holds Leviathan's XFS: it is mounted, never formatted"
            )
        elif d is not None and d.foreign:
            why.update(
                f"{choice.value} holds {d.foreign}: formatting it destroys that and needs a second, louder confirmation"
            )
        else:
            why.update(
                f"{choice.value}: {d.fit_note if d else ''}. Enter to choose it (a typed confirmation follows)"
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._choose(event.cursor_row)

    def action_choose(self) -> None:
        self._choose(self.query_one(DataTable).cursor_row)

    def _choose(self, row: int) -> None:
        choice = self.question.choices[row]
        if not choice.selectable:
            self.query_one("#device-why", Static).update(
                f"{choice.value} cannot be chosen: {choice.reason}"
            )
            return
        self.dismiss(choice.value)

    def action_back(self) -> None:
        self.dismiss(BACK)
