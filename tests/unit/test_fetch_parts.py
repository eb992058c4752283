"""The fetch agent's parts on their own: segment table and sidecar, prefix hasher, byte cap,
writer lock."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from leviathan_tui.agent.fetch_plan import PlannedFile
from leviathan_tui.agent.fetch_records import partial_path, segments_path
from leviathan_tui.agent.hasher import PrefixHasher
from leviathan_tui.agent.segments import ALIGN, PAGE, Segment, SegmentTable
from leviathan_tui.agent.throttle import TokenBucket
from leviathan_tui.agent.transfer import load_table
from leviathan_tui.agent.writer_lock import LockBusy, WriterLock

MiB = 2**20


def test_fresh_table_splits_into_aligned_parts_that_tile_the_file() -> None:
    table = SegmentTable.fresh(10 * MiB + 5, parts=4, min_segment=MiB)
    bounds = [(s.start, s.end) for s in table.segments]
    assert bounds[0][0] == 0 and bounds[-1][1] == 10 * MiB + 5 and len(bounds) == 4
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(start % ALIGN == 0 for start, _ in bounds)
    assert len(SegmentTable.fresh(3 * MiB, parts=8, min_segment=MiB).segments) == 3


def test_claim_takes_idle_segments_first_then_splits_the_largest_beyond_the_reserve() -> None:
    table = SegmentTable.fresh(64 * MiB, parts=2, min_segment=MiB)
    first = table.claim(MiB, reserve=4 * MiB)
    second = table.claim(MiB, reserve=4 * MiB)
    assert (first.start, second.start) == (0, 32 * MiB)
    table.advance(first, 30 * MiB)  # first has 2 MiB left: too little to split past the reserve
    third = table.claim(MiB, reserve=4 * MiB)
    assert third is not None and third.start == 48 * MiB and second.end == 48 * MiB
    assert third.start >= second.position + 4 * MiB
    tiny = SegmentTable.fresh(3 * MiB)
    only = tiny.claim(MiB, reserve=4 * MiB)
    assert only is not None and tiny.claim(MiB, reserve=4 * MiB) is None


def test_advance_stops_at_an_end_that_moved_and_the_prefix_waits_for_gaps() -> None:
    table = SegmentTable(
        30 * MiB, [Segment(0, 10 * MiB), Segment(10 * MiB, 20 * MiB), Segment(20 * MiB, 30 * MiB)]
    )
    a, b, c = table.segments
    table.advance(c, 10 * MiB)
    table.advance(b, 4 * MiB)
    assert table.prefix() == 0 and table.written() == 14 * MiB
    assert table.advance(a, 10 * MiB) is False
    assert table.prefix() == 14 * MiB
    b.end = 12 * MiB  # a split moved b's end below what is about to land
    assert table.advance(b, 4 * MiB) is False and b.done == 2 * MiB
    assert table.positions() == []


def test_sidecar_is_one_page_rewritten_in_place_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "f.segments.json"
    table = SegmentTable.fresh(40 * MiB, parts=4, min_segment=MiB)
    table.attach(path, "d" * 64)
    inode = path.stat().st_ino
    a, b, *_ = table.segments
    table.advance(a, 10 * MiB)  # finished: merged with the next row when saved
    table.advance(b, 3 * MiB)
    table.detach()
    assert path.stat().st_size == PAGE and path.stat().st_ino == inode
    rows = json.loads(path.read_text())["segments"]
    assert rows[0] == [0, 20 * MiB, 13 * MiB] and len(rows) == 3
    loaded = SegmentTable.load(path, 40 * MiB, "d" * 64)
    assert loaded is not None and loaded.written() == 13 * MiB and loaded.prefix() == 13 * MiB
    assert SegmentTable.load(path, 40 * MiB, "e" * 64) is None  # planned for other content
    assert SegmentTable.load(path, 41 * MiB, "d" * 64) is None


def test_a_sidecar_whose_rows_do_not_tile_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.segments.json"
    bad = {"version": 1, "size": 100, "digest": "x", "segments": [[0, 50, 10], [60, 100, 0]]}
    path.write_text(json.dumps(bad))
    assert SegmentTable.load(path, 100, "x") is None
    path.write_text(json.dumps({**bad, "segments": [[0, 100, 101]]}))
    assert SegmentTable.load(path, 100, "x") is None


def _planned(tmp_path: Path, data: bytes) -> PlannedFile:
    return PlannedFile(
        "r", "c" * 40, "Q/f.gguf", len(data), hashlib.sha256(data).hexdigest(), None, tmp_path / "f"
    )


def test_a_partial_file_from_the_agent_before_segments_counts_as_written_from_zero(
    tmp_path: Path,
) -> None:
    file = _planned(tmp_path, b"x" * (3 * MiB))
    partial_path(file).parent.mkdir(parents=True)
    partial_path(file).write_bytes(b"x" * MiB)
    assert load_table(file).written() == MiB
    segments_path(file).write_text(
        json.dumps(
            {"version": 1, "size": 3 * MiB, "digest": "other", "segments": [[0, 3 * MiB, 0]]}
        )
    )
    table = load_table(file, parts=3, min_segment=MiB)  # a sidecar for other content: start over
    assert table.written() == 0 and len(table.segments) == 3 and not partial_path(file).exists()


def test_prefix_hasher_reads_only_the_contiguous_prefix_and_ends_with_the_last_byte(
    tmp_path: Path,
) -> None:
    data = os.urandom(12 * MiB + 123)
    file = _planned(tmp_path, data)
    path = tmp_path / "f.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    table = SegmentTable.fresh(len(data), parts=3, min_segment=MiB)
    first, second, third = table.segments
    hasher = PrefixHasher(path, file, table).start()
    try:
        # the last segment lands first; garbage sits where the second one will go
        os.pwrite(fd, data[third.start :], third.start)
        table.advance(third, third.end - third.start)
        os.pwrite(fd, b"\0" * (second.end - second.start), second.start)
        time.sleep(0.2)
        assert hasher.hashed == 0
        os.pwrite(fd, data[: first.end], 0)
        table.advance(first, first.end)
        deadline = time.monotonic() + 5
        while hasher.hashed < first.end and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hasher.hashed == first.end  # it followed the prefix, not the end of the file
        os.pwrite(fd, data[second.start : second.end], second.start)
        table.advance(second, second.end - second.start)
        assert hasher.digest(timeout=10) == hashlib.sha256(data).hexdigest()
    finally:
        hasher.stop()
        os.close(fd)


def test_prefix_hasher_reports_a_missing_file_instead_of_hanging(tmp_path: Path) -> None:
    data = b"y" * (5 * MiB)
    file = _planned(tmp_path, data)
    table = SegmentTable.fresh(len(data))
    hasher = PrefixHasher(tmp_path / "gone.part", file, table).start()
    table.advance(table.segments[0], len(data))
    with pytest.raises(OSError):
        hasher.digest(timeout=10)


def test_token_bucket_holds_the_rate_summed_over_threads() -> None:
    rate = 40 * MiB
    bucket = TokenBucket(rate, burst=MiB)
    chunk, per_thread, threads = MiB, 5, 4

    def take() -> None:
        for _ in range(per_thread):
            bucket.take(chunk)

    started = time.monotonic()
    workers = [threading.Thread(target=take) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    total = chunk * per_thread * threads
    assert elapsed >= (total - MiB) / rate * 0.95
    unlimited = TokenBucket(None)
    started = time.monotonic()
    unlimited.take(10**12)
    assert time.monotonic() - started < 0.1


def test_writer_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    first = WriterLock(tmp_path)
    first.acquire(0)
    second = WriterLock(tmp_path)
    try:
        told: list[dict] = []
        with pytest.raises(LockBusy) as busy:
            second.acquire(0.6, on_wait=told.append)
        assert busy.value.holder["pid"] == os.getpid() and told == [busy.value.holder]
        assert f"pid {os.getpid()}" in str(busy.value)
    finally:
        first.release()
    second.acquire(0)
    assert json.loads(second.path.read_text())["pid"] == os.getpid()
    second.release()


def test_the_agent_configmap_alone_runs_the_fetch_agent(tmp_path: Path) -> None:
    """Every agent module ships in the ConfigMap: the fetch agent starts from its files alone."""
    import subprocess
    import sys

    from leviathan_tui.config import Config
    from leviathan_tui.manifests import _configmap_items, agent_configmap

    shipped = {p.name for p in Path("leviathan_tui/agent").glob("*.py")}
    configmap = agent_configmap(Config())
    listed = {k.removeprefix("leviathan_tui.agent.") for k in configmap["data"]}
    assert shipped <= listed, shipped - listed
    for item in _configmap_items(configmap):
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]])
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "import runpy; sys.argv = ['fetch', '--help']; "
            "runpy.run_module('leviathan_tui.agent.fetch', run_name='__main__')",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--connections-per-file" in proc.stdout
