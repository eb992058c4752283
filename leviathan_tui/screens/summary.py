"""The final summary: the endpoint, a curl line that works (one line, scroll sideways), the
replay command exactly as this session ran, and the Talos patch that keeps the disk mounted."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static


class SummaryScreen(Screen[None]):
    CSS_PATH = "summary.tcss"
    BINDINGS = [
        Binding("q", "app.quit_app", "Quit"),
        Binding("escape", "back", "Back to the steps"),
        Binding("c", "copy_curl", "Copy the curl command"),
    ]

    def __init__(self, lines: dict[str, str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="summary-body"):
            yield Static("The service is up.", id="summary-title")
            yield Static(
                "Long lines stay whole: scroll sideways with ← →; c copies the curl command.",
                id="summary-hint",
            )
            for key, value in self.lines.items():
                yield Static(Text(key, style="bold"), classes="summary-key")
                yield Static(Text(value, no_wrap=True, overflow="ignore"), classes="summary-value")
        yield Footer()

    def on_mount(self) -> None:
        for widget in self.query("#summary-body"):  # none if closed before it was mounted
            widget.focus()

    def action_copy_curl(self) -> None:
        command = self.lines.get("Try it", "")
        self.app.copy_to_clipboard(command)  # OSC 52: the terminal puts it on the clipboard
        self.notify("the curl command is on the clipboard (where the terminal allows it)")

    def action_back(self) -> None:
        self.app.pop_screen()
