"""The plan, before anything changes: where Leviathan will act and what it will do there.
Start begins the bring-up; nothing but read-only calls happened before it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from leviathan_tui.phases.plan_line import PlanLine

STYLE = {"ok": "green", "info": "", "warn": "yellow", "error": "bold red"}
MARK = {"ok": "✔", "info": "·", "warn": "!", "error": "✘"}
READ_IN_FULL = "Read in full. Start (Enter) begins the bring-up."


class StartButton(Button):
    """Enter on it starts, and the footer says so (a plain button hides its Enter)."""

    BINDINGS = [Binding("enter", "press", "Start")]


class QuitButton(Button):
    BINDINGS = [Binding("enter", "press", "Quit")]


class PlanScreen(Screen[str]):
    """Dismisses with "start" or "quit"."""

    CSS_PATH = "plan.tcss"
    BINDINGS = [
        # not a priority binding: Enter then waits its turn behind a Tab typed just before it,
        # and goes where that Tab put the focus
        Binding("enter", "start", "Start", show=True),
        Binding("escape", "stay", "Stay (q quits)", show=False),  # Esc must not quit here
        Binding("q", "quit", "Quit"),
        Binding("pagedown,down", "scroll_plan(1)", "Scroll", show=False),
        Binding("pageup,up", "scroll_plan(-1)", show=False),
        Binding("end", "scroll_plan(1000)", show=False),
        Binding("home", "scroll_plan(-1000)", show=False),
    ]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.plan_title = title
        self.lines: list[PlanLine] = []
        self.complete = False
        self.rereading = False  # the lines shown are from the last read; a new one is under way

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="plan-body"):
            yield Static(self.plan_title, id="plan-title")
            yield Static("reading the cluster, the build host's key and the Hub…", id="plan-lines")
        with Horizontal(id="plan-buttons"):
            yield StartButton("Start  (Enter)", id="plan-start", variant="primary")
            yield QuitButton("Quit  (q)", id="plan-quit")
        yield Footer()

    def on_mount(self) -> None:
        starts = self.query("#plan-start")
        if not starts:  # closed before it was mounted
            return
        starts.first().focus()
        if self.lines or self.complete:
            self._paint()

    def add_line(self, line: PlanLine) -> None:
        self.lines.append(line)
        self._paint()

    def finished(self) -> None:
        self.complete = True
        self._paint()

    def reread(self, lines: list[PlanLine]) -> None:
        """The lines of a new read replace the ones shown."""
        self.lines = list(lines)
        self.rereading = False
        self._paint()

    def _paint(self) -> None:
        if not self.query("#plan-lines"):
            return  # not composed yet: on_mount paints what arrived before
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column(width=1)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        topic = ""
        for line in self.lines:
            text = Text(line.text, style=STYLE[line.level])
            if line.fix:
                text.append(f"\n→ {line.fix}", style="dim")
            table.add_row(
                Text(MARK[line.level], style=STYLE[line.level]),
                line.topic if line.topic != topic else "",
                text,
            )
            topic = line.topic
        if not self.complete:
            table.add_row("", "", Text("… reading", style="dim italic"))
        elif self.rereading:
            table.add_row(
                "", "", Text("… reading again: these lines are from before", style="dim italic")
            )
        elif any(line.level == "error" for line in self.lines):
            table.add_row(
                "",
                "",
                Text(
                    "Some of the plan cannot be read (✘). Start runs the steps anyway; they stop "
                    "at the first of these with the same message.",
                    style="yellow",
                ),
            )
        else:  # the operator sees when Start will be taken, not only when "… reading" goes away
            table.add_row("", "", Text(READ_IN_FULL, style="dim"))
        self.query_one("#plan-lines", Static).update(table)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "plan-start":
            self._start()
        else:
            self.dismiss("quit")

    def action_start(self) -> None:  # Enter with the focus off the buttons (the plan's text)
        self._start()

    def _start(self) -> None:
        if not self.complete:  # the operator starts what they have read, not a blank plan
            self.notify("the plan is still being read: Start once it is shown", severity="warning")
            return
        self.dismiss("start")

    def action_quit(self) -> None:
        self.dismiss("quit")

    def action_scroll_plan(self, pages: int) -> None:
        body = self.query_one("#plan-body", VerticalScroll)
        body.scroll_to(y=body.scroll_y + pages * max(1, body.size.height - 2), animate=False)

    def action_stay(self) -> None:
        self.notify("Enter starts; q quits")
