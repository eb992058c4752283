"""The log pane ingesting a 50 000-line build log as fast as it arrives: lines/s and the worst
UI frame delay, against `cat` of the same file."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._figure import Figure

LINES = 50_000


def build_log(path: Path) -> Path:
    parts = [
        "[ {p:3d}%] Building CXX object csrc/ktransformers_ext/CMakeFiles/cpuinfer_ext.dir/operators/llamafile/moe.cpp.o",
        "-- Looking for pthread_create in pthreads - not found",
        "/usr/include/c++/11/bits/stl_vector.h:1043: warning: comparison of integer expressions of different signedness",
        "Requirement already satisfied: torch>=2.3.0 in /usr/local/lib/python3.11/dist-packages (from ktransformers==0.4.1) (2.7.0+cu128)",
        "error: expected ';' before '}}' token (recorded failure line {i})",
    ]
    with open(path, "w") as handle:
        for i in range(LINES):
            handle.write(parts[i % len(parts)].format(p=i % 100, i=i) + "\n")
    return path


async def _ingest(lines: list[str]) -> tuple[float, float, float]:
    from textual.app import App, ComposeResult

    from leviathan_tui.widgets.log_pane import LogPane

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield LogPane(cap=20_000, id="pane")

    app = Host()
    worst_gap = 0.0
    async with app.run_test(size=(140, 45)) as pilot:
        pane = app.query_one(LogPane)
        last = time.perf_counter()
        gaps: list[float] = []

        def tick() -> None:
            nonlocal last
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

        app.set_interval(0.01, tick)
        start = time.perf_counter()
        batch = 2000  # lines arriving per read of the remote log
        for i in range(0, len(lines), batch):
            for line in lines[i : i + batch]:
                pane.add("build.image", line, "error" if "error" in line else "info")
            await asyncio.sleep(0)
        while pane.painted < len(lines):
            await pilot.pause(0.01)
        elapsed = time.perf_counter() - start
        worst_gap = max(gaps) if gaps else 0.0
        return len(lines) / elapsed, worst_gap, pane.worst_paint_s


def run() -> list[Figure]:
    path = build_log(Path(tempfile.mkdtemp()) / "build.log")
    lines = path.read_text().splitlines()
    start = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    cat_rate = LINES / (time.perf_counter() - start)
    rate, worst_gap, worst_paint = asyncio.run(_ingest(lines))
    return [
        Figure(
            "logpane.lines_per_s",
            rate,
            "lines/s",
            ">=20000",
            f"cat of the same file: {cat_rate:,.0f} lines/s ({rate / cat_rate:.3f}x)",
        ),
        Figure(
            "logpane.worst_frame_delay",
            worst_gap * 1000,
            "ms",
            "<=100",
            f"worst single paint {worst_paint * 1000:.1f} ms",
        ),
    ]
