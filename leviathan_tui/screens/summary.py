"""The final summary: the endpoint, a curl line that works, and where the replay file is."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static


class SummaryScreen(Screen[None]):
    CSS_PATH = "summary.tcss"
    BINDINGS = [
        Binding("q", "app.quit_app", "Quit"),
        Binding("escape", "back", "Back to the steps"),
    ]

    def __init__(self, lines: dict[str, str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="summary"):
            yield Static("The service is up.", id="title")
            for key, value in self.lines.items():
                yield Static(Text.assemble((key + "\n", "bold"), value), classes="item")
        yield Footer()

    def action_back(self) -> None:
        self.app.pop_screen()
