"""The download step's reading of the fetch agent's events (leviathan_tui/phases/download.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from leviathan_tui.phases.download import DownloadView, done_message
from leviathan_tui.records import ModelFiles

GB = 10**9


class Ctx:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, line: str, level: str = "info") -> None:
        self.lines.append(line)

    def __getattr__(self, name: str) -> Any:  # progress, file_progress, files_planned
        return lambda *args, **kwargs: None


def test_the_resume_figure_counts_every_complete_file_and_the_partial_ones() -> None:
    files = [SimpleNamespace(name=f"shard-{i}", size=45 * GB) for i in range(1, 5)]
    ctx = Ctx()
    view = DownloadView(ctx, SimpleNamespace(files=files, total=180 * GB))  # type: ignore[arg-type]
    # the agent's order: complete files first, then the partial one's offset, then bytes
    view({"event": "file_done", "file": "shard-1", "size": 45 * GB, "skipped": True})
    view({"event": "file_done", "file": "shard-2", "size": 45 * GB, "skipped": True})
    view({"event": "resume", "file": "shard-3", "done": 10 * GB, "total": 45 * GB})
    view({"event": "progress", "file": "shard-3", "done": 10 * GB + 1, "total": 45 * GB})
    view({"event": "progress", "file": "shard-3", "done": 11 * GB, "total": 45 * GB})
    resumed = [line for line in ctx.lines if line.startswith("resuming from")]
    assert resumed == [
        "resuming from 100.0 GB already on the disk (2 complete files, 10.0 GB of partly downloaded ones)"
    ]


def test_a_file_is_called_sha256_verified_only_when_the_agent_checked_it() -> None:
    files = [SimpleNamespace(name=n, size=GB) for n in ("checked", "unchecked")]
    ctx = Ctx()
    view = DownloadView(ctx, SimpleNamespace(files=files, total=2 * GB))  # type: ignore[arg-type]
    view({"event": "file_done", "file": "checked", "size": GB, "verified": True})
    view({"event": "file_done", "file": "unchecked", "size": GB, "verified": False})
    assert ctx.lines == [
        "checked: complete, sha256 verified",
        "unchecked: complete, its sha256 was not checked",
    ]


def test_the_done_line_says_what_was_fetched_now_and_what_was_on_the_disk() -> None:
    files = [SimpleNamespace(name=f"shard-{i}", size=45 * GB) for i in range(1, 4)]
    plan = SimpleNamespace(files=files, total=135 * GB)
    view = DownloadView(Ctx(), plan)  # type: ignore[arg-type]
    view({"event": "file_done", "file": "shard-1", "size": 45 * GB, "skipped": True})
    view({"event": "resume", "file": "shard-2", "done": 10 * GB, "total": 45 * GB})
    for name in ("shard-2", "shard-3"):
        view({"event": "file_done", "file": name, "size": 45 * GB, "verified": True})
    line = done_message(ModelFiles("F", 3, 135 * GB, True), view.resumed)
    assert (
        line == "3 files, 135.0 GB verified: 80.0 GB fetched now, 55.0 GB were on the disk already"
    )
    fresh = DownloadView(Ctx(), plan)  # type: ignore[arg-type]
    for name in ("shard-1", "shard-2", "shard-3"):
        fresh({"event": "file_done", "file": name, "size": 45 * GB, "verified": True})
    assert done_message(ModelFiles("F", 3, 135 * GB, True), fresh.resumed) == (
        "3 files, 135.0 GB downloaded and verified"
    )
    assert "sha256 not checked" in done_message(ModelFiles("F", 3, 135 * GB, False), 0)
