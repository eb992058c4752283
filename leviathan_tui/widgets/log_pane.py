"""A log pane in the manner of k9s: follow/pause, search with / (step ids and text), errors only,
one step's lines, wrap, save with timestamps, a line cap.

Lines arrive in batches and are painted at most every 50 ms, so a build printing thousands of
lines a second does not freeze the UI.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, RichLog

LEVEL_STYLE = {"error": "bold red", "warn": "yellow", "debug": "dim", "info": ""}
MAX_LINES_PER_PAINT = 300  # a flood is kept whole (search, save, pause) but painted by its tail


@dataclass(frozen=True)
class Entry:
    stamp: float
    source: str
    line: str
    level: str


class LogPane(Vertical):
    DEFAULT_CSS = """
    LogPane { border: round $secondary; height: 1fr; }
    LogPane RichLog { height: 1fr; }
    LogPane Input { display: none; dock: bottom; }
    LogPane Input.visible { display: block; }
    """
    BINDINGS = [
        Binding("f", "toggle_follow", "Follow/pause"),
        Binding("e", "toggle_errors", "Errors only"),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("slash", "search", "Search"),
        Binding("x", "all_steps", "All steps"),
        Binding("s", "save", "Save log"),
    ]

    def __init__(self, cap: int = 20000, save_dir: Path | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cap = cap
        self.save_dir = save_dir or Path.cwd()
        self.entries: collections.deque[Entry] = collections.deque(maxlen=cap)
        self._pending: list[Entry] = []
        self.follow = True
        self.errors_only = False
        self.wrap = False
        self.search = ""
        self.step = ""  # show only this step's lines
        self.painted = 0
        self.worst_paint_s = 0.0

    @property
    def lines(self) -> list[tuple[str, str, str]]:
        return [(e.source, e.line, e.level) for e in self.entries]

    def compose(self) -> ComposeResult:
        yield RichLog(
            max_lines=self.cap,
            wrap=self.wrap,
            min_width=1,  # wrapped lines follow the pane's width, not RichLog's 78 columns
            markup=False,
            highlight=False,
            auto_scroll=True,
            id="log",
        )
        yield Input(
            placeholder="search step ids and text; Enter applies, empty clears", id="log-search"
        )

    def on_mount(self) -> None:
        self._update_title()
        self.set_interval(0.05, self.flush)

    def _update_title(self) -> None:
        flags = ["following" if self.follow else "PAUSED"]
        if self.step:
            flags.append(f"step {self.step} (x: all)")
        if self.errors_only:
            flags.append("errors only")
        if self.search:
            flags.append(f"search: {self.search}")
        if self.wrap:
            flags.append("wrapped")
        self.border_title = "Log — " + ", ".join(flags)

    def add(self, source: str, line: str, level: str = "info") -> None:
        self._pending.append(Entry(time.time(), source, line, level))

    def _visible(self, entry: Entry) -> bool:
        if self.step and entry.source != self.step:
            return False
        if self.errors_only and entry.level not in ("error", "warn"):
            return False
        needle = self.search.lower()
        return not needle or needle in entry.line.lower() or needle in entry.source.lower()

    def _as_text(self, entries: list[Entry]) -> Text:
        text = Text()
        for i, entry in enumerate(entries):
            if i:
                text.append("\n")
            source = entry.source if len(entry.source) <= 15 else entry.source[:14] + "…"
            text.append(f"{source:<15} ", style="dim")
            text.append(entry.line, style=LEVEL_STYLE.get(entry.level, ""))
        return text

    def flush(self) -> None:
        if not self._pending:
            return
        start = time.perf_counter()
        batch, self._pending = self._pending, []
        self.entries.extend(batch)
        shown = [entry for entry in batch if self._visible(entry)]
        if shown:
            log = self.query_one(RichLog)
            skipped = len(shown) - MAX_LINES_PER_PAINT
            if skipped > 0:
                shown = shown[-MAX_LINES_PER_PAINT:]
                log.write(
                    Text(
                        f"… {skipped:,} lines arrived faster than they can be read; all are kept: pause (f), search (/) or save (s)",
                        style="dim italic",
                    )
                )
            log.write(self._as_text(shown), scroll_end=self.follow)
        self.painted += len(batch)
        self.worst_paint_s = max(self.worst_paint_s, time.perf_counter() - start)

    def _repaint(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        shown = [entry for entry in self.entries if self._visible(entry)]
        if shown:
            log.write(self._as_text(shown), scroll_end=self.follow)
        elif self.entries:
            log.write(
                Text("no line matches what is chosen; x shows every line", style="dim italic")
            )
        self._update_title()

    def show_step(self, step_id: str) -> None:
        self.step = step_id
        self._repaint()

    def action_all_steps(self) -> None:
        """Every line again: the step filter, the search and "errors only" are cleared."""
        self.step = ""
        self.search = ""
        self.errors_only = False
        self._repaint()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.query_one(RichLog).auto_scroll = self.follow
        self._update_title()

    def action_toggle_errors(self) -> None:
        self.errors_only = not self.errors_only
        self._repaint()

    def on_resize(self) -> None:
        if self.wrap:  # written lines keep the width they were wrapped at
            self._repaint()

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self.query_one(RichLog).wrap = self.wrap
        self._repaint()

    def action_search(self) -> None:
        box = self.query_one(Input)
        box.add_class("visible")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "log-search":
            return
        event.stop()
        self.search = event.value.strip()
        event.input.remove_class("visible")
        self._repaint()
        self.query_one(RichLog).focus()

    def save(self) -> Path:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = self.save_dir / time.strftime("leviathan-log-%Y%m%d-%H%M%S.txt")
        rows = []
        for entry in self.entries:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.stamp))
            rows.append(f"{stamp}\t{entry.source or 'leviathan'}\t{entry.level}\t{entry.line}")
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return path

    def action_save(self) -> None:
        try:
            path = self.save()
        except OSError as err:
            self.notify(f"cannot save the log: {err.strerror or err}", severity="error")
            return
        self.notify(f"log saved to {path}")
