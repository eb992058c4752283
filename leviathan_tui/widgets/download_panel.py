"""Download progress: the overall line (bytes, %, speed, ETA, retries) and one row per file —
every file of the plan from the start, each with bytes, speed, ETA and state. Speeds and ETAs
come from rich's progress tasks (their windowed rate), not home-made arithmetic."""

from __future__ import annotations

import re
from typing import Any

from rich.progress import Progress as RichProgress
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, ProgressBar, Static

from leviathan_tui.events import found_on_disk
from leviathan_tui.units import decimal_size, duration, rate, short_duration, short_rate

COLUMNS = ("file", "state", "done of size", "speed", "ETA")  # narrow enough for 80 columns


def short_name(name: str) -> str:
    """'DeepSeek-V3-Q4_K_M-00002-of-00009.gguf' -> 'shard 2/9' (the folder says the rest);
    other files by their name, cut to 14 characters."""
    match = re.search(r"-(\d{5})-of-(\d{5})\.gguf$", name)
    if match:
        return f"shard {int(match.group(1))}/{int(match.group(2))}"
    return name if len(name) <= 14 else name[:13] + "…"


def done_of(done: float, total: float) -> str:
    """'12.0/44.9 GB'; the unit twice only when they differ ('812.0 MB/44.9 GB')."""
    d, t = decimal_size(done), decimal_size(total)
    d_value, _, d_unit = d.partition(" ")
    return f"{d_value}/{t}" if d_unit == t.partition(" ")[2] else f"{d}/{t}"


class DownloadPanel(Vertical):
    DEFAULT_CSS = """
    DownloadPanel { height: auto; }
    DownloadPanel #dl-summary { height: auto; }
    DownloadPanel DataTable { height: auto; max-height: 12; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rich = RichProgress(auto_refresh=False, disable=True)
        self._task_ids: dict[str, int] = {}
        self.states: dict[str, str] = {}
        self.total = 0.0
        self.done = 0.0
        self.retries = 0
        self.note = ""
        self._rebase = True  # the first figure may include bytes from an earlier session

    def compose(self) -> ComposeResult:
        yield Static("no download yet: the plan is read before the disk is chosen", id="dl-summary")
        yield ProgressBar(total=None, show_eta=False, id="dl-bar")
        table: DataTable[str] = DataTable(id="dl-files", cursor_type="row", zebra_stripes=True)
        self._columns = table.add_columns(*COLUMNS)
        yield table

    def _task_for(self, key: str, total: float | None) -> int:
        if key not in self._task_ids:
            self._task_ids[key] = self._rich.add_task(key, total=total)
        return self._task_ids[key]

    def _rich_task(self, task_id: int) -> Any:
        return next(t for t in self._rich.tasks if t.id == task_id)

    def _summary(self) -> None:
        task = self._rich_task(self._task_for("", self.total or None))
        parts = [f"{decimal_size(self.done)} of {decimal_size(self.total)}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.1f}%)"
        if task.speed:
            parts.append(rate(task.speed))
        if task.time_remaining is not None and self.done < self.total:
            parts.append(f"ETA {duration(task.time_remaining)}")
        if self.retries:
            parts.append(f"{self.retries} retries")
        if self.note:
            parts.append(self.note)
        self.query_one("#dl-summary", Static).update(" — ".join(parts))

    def plan(self, files: tuple[tuple[str, int], ...]) -> None:
        for name, size in files:
            if name not in self.states:
                self.file(name, 0, size, "waiting")
        self.total = float(sum(size for _, size in files)) or self.total
        self._summary()

    def overall(self, done: float, total: float | None) -> None:
        self.done = done
        self.total = total or self.total
        task_id = self._task_for("", self.total or None)
        if self._rebase:  # bytes found on the disk are not bytes per second: speed starts now
            self._rebase = False
            self._rich.reset(task_id, completed=done, total=self.total or None)
        else:
            self._rich.update(task_id, completed=done, total=self.total or None)
        self.query_one(ProgressBar).update(total=self.total or None, progress=done)
        self._summary()

    def file(self, name: str, done: float, total: float | None, state: str, note: str = "") -> None:
        table = self.query_one(DataTable)
        task_id = self._task_for(name, total)
        previous = self.states.get(name, "waiting")
        if found_on_disk(previous, state):
            self._rebase = True
        if state == "resuming":
            self._rich.reset(
                task_id, completed=done, total=total
            )  # a resumed file's speed starts now
        else:
            self._rich.update(task_id, completed=done, total=total)
        task = self._rich_task(task_id)
        if state == "retrying" and self.states.get(name) != "retrying":
            self.retries += 1
        self.states[name] = state
        # the row fits the 52 columns the pane has at 80x24: short forms, "fetching"
        speed = short_rate(task.speed) if task.speed and state == "downloading" else "-"
        eta = (
            short_duration(task.time_remaining)
            if task.time_remaining is not None and state == "downloading"
            else "-"
        )
        label = note if note and state not in ("done",) else state
        if state == "done":
            label = note or "done"
        label = "fetching" if label == "downloading" else label
        row = (short_name(name), label, done_of(done, total or 0), speed, eta)
        if name in table.rows:
            for key, value in zip(self._columns, row, strict=True):
                table.update_cell(name, key, value, update_width=True)
        else:
            table.add_row(*row, key=name)

    def failed(self, message: str) -> None:
        self.note = f"stopped: {message}"
        self._summary()
