"""Download progress: the overall bar (bytes, %, speed, ETA) and one row per file."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, ProgressBar, Static


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


class DownloadPanel(Vertical):
    DEFAULT_CSS = """
    DownloadPanel { height: auto; }
    DownloadPanel #dl-summary { height: auto; }
    DownloadPanel DataTable { height: auto; max-height: 16; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.files: dict[str, tuple[float, float, str]] = {}
        self.total = 0.0
        self.done = 0.0
        self._started: float | None = None
        self._first_done = 0.0
        self.retries = 0

    def compose(self) -> ComposeResult:
        yield Static("waiting for the download plan", id="dl-summary")
        yield ProgressBar(total=None, show_eta=True, id="dl-bar")
        table: DataTable[str] = DataTable(id="dl-files", cursor_type="none")
        self._columns = table.add_columns("file", "size", "progress", "state")
        yield table

    def overall(self, done: float, total: float | None) -> None:
        if self._started is None:
            self._started, self._first_done = time.monotonic(), done
        self.done = done
        self.total = total or self.total
        bar = self.query_one(ProgressBar)
        bar.update(total=self.total or None, progress=done)
        elapsed = time.monotonic() - self._started
        speed = (done - self._first_done) / elapsed if elapsed > 1 else 0.0
        self.query_one("#dl-summary", Static).update(
            f"{_gb(done)} of {_gb(self.total)} ({_gib(done)} of {_gib(self.total)})"
            + (f" — {speed / 1e6:.1f} MB/s" if speed else "")
            + (f" — {self.retries} retries" if self.retries else "")
        )

    def file(self, name: str, done: float, total: float | None, note: str = "") -> None:
        table = self.query_one(DataTable)
        total = total or self.files.get(name, (0, 0, ""))[1]
        state = note or ("done" if total and done >= total else "downloading")
        if note.startswith("retry"):
            self.retries += 1
        pct = f"{100 * done / total:5.1f}%" if total else "?"
        row = (name, _gb(total), pct, state)
        if name in self.files:
            for key, value in zip(self._columns, row, strict=True):
                table.update_cell(name, key, value)
        else:
            table.add_row(*row, key=name)
        self.files[name] = (done, total, state)
