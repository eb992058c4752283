"""The headless front-end's lines (leviathan_tui/headless.py): progress after a resume, and output
that can no longer be written."""

from __future__ import annotations

import io
import re
import time

from leviathan_tui.events import FileProgress, Progress
from leviathan_tui.headless import HeadlessPrinter, ProgressLines
from leviathan_tui.streams import tell

GB = 10**9


def speeds(text: str) -> list[float]:
    scale = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    return [float(v) * scale[u] for v, u in re.findall(r", ([\d.]+) (kB|MB|GB|TB)/s", text)]


def test_bytes_found_on_the_disk_do_not_count_as_speed() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(out, io.StringIO())
    printer.progress = ProgressLines(every_s=0)
    step = "download.fetch"
    printer.handle(Progress(step, done=10 * GB, total=400 * GB))
    # the agent reports what an earlier run left: a complete file and a partial one
    printer.handle(FileProgress(step, file="a", done=45 * GB, total=45 * GB, state="done"))
    printer.handle(FileProgress(step, file="b", done=135 * GB, total=200 * GB, state="resuming"))
    printer.handle(Progress(step, done=190 * GB, total=400 * GB))
    for i in range(1, 4):
        time.sleep(0.2)
        printer.handle(Progress(step, done=190 * GB + i * GB // 10, total=400 * GB))
    seen = speeds(out.getvalue())
    assert seen, out.getvalue()
    assert max(seen) < 5 * GB, out.getvalue()  # about 0.5 GB/s, never 180 GB in a blink


def test_a_stream_that_cannot_be_written_is_reported_not_raised(tmp_path) -> None:
    class HungUp(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

    assert tell(io.StringIO(), "fine\n") is True
    assert tell(HungUp(), "lost\n") is False
    printer = HeadlessPrinter(HungUp(), io.StringIO())
    printer.handle(Progress("download.fetch", done=1, total=2))
    assert printer.reader_gone
