"""A log pane in the manner of k9s: follow/pause, search with /, errors-only, save, a line cap.

Lines arrive in batches and are painted at most every 50 ms, so a build printing thousands of
lines a second does not freeze the UI.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, RichLog

LEVEL_STYLE = {"error": "bold red", "warn": "yellow", "debug": "dim", "info": ""}
MAX_LINES_PER_PAINT = 300  # a flood is kept whole (search, save, pause) but painted by its tail


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
        Binding("slash", "search", "Search"),
        Binding("s", "save", "Save log"),
    ]

    def __init__(self, cap: int = 20000, save_dir: Path | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cap = cap
        self.save_dir = save_dir or Path.cwd()
        self.lines: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=cap)
        self._pending: list[tuple[str, str, str]] = []
        self.follow = True
        self.errors_only = False
        self.search = ""
        self.painted = 0
        self.worst_paint_s = 0.0

    def compose(self) -> ComposeResult:
        yield RichLog(
            max_lines=self.cap,
            wrap=False,
            markup=False,
            highlight=False,
            auto_scroll=True,
            id="log",
        )
        yield Input(placeholder="search (Enter to apply, empty to clear)", id="log-search")

    def on_mount(self) -> None:
        self._update_title()
        self.set_interval(0.05, self.flush)

    def _update_title(self) -> None:
        flags = ["following" if self.follow else "PAUSED"]
        if self.errors_only:
            flags.append("errors only")
        if self.search:
            flags.append(f"search: {self.search}")
        self.border_title = "Log — " + ", ".join(flags)

    def add(self, source: str, line: str, level: str = "info") -> None:
        self._pending.append((source, line, level))

    def _visible(self, item: tuple[str, str, str]) -> bool:
        _, line, level = item
        if self.errors_only and level not in ("error", "warn"):
            return False
        return not self.search or self.search.lower() in line.lower()

    def _as_text(self, items: list[tuple[str, str, str]]) -> Text:
        text = Text()
        for i, (source, line, level) in enumerate(items):
            if i:
                text.append("\n")
            text.append(f"{source:<15} ", style="dim")
            text.append(line, style=LEVEL_STYLE.get(level, ""))
        return text

    def flush(self) -> None:
        if not self._pending:
            return
        start = time.perf_counter()
        batch, self._pending = self._pending, []
        self.lines.extend(batch)
        shown = [item for item in batch if self._visible(item)]
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
        shown = [item for item in self.lines if self._visible(item)]
        if shown:
            log.write(self._as_text(shown), scroll_end=self.follow)
        self._update_title()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.query_one(RichLog).auto_scroll = self.follow
        self._update_title()

    def action_toggle_errors(self) -> None:
        self.errors_only = not self.errors_only
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

    def action_save(self) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = self.save_dir / time.strftime("leviathan-log-%Y%m%d-%H%M%S.txt")
        path.write_text(
            "\n".join(f"{s}\t{lvl}\t{line}" for s, line, lvl in self.lines) + "\n", encoding="utf-8"
        )
        self.notify(f"log saved to {path}")
