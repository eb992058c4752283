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


def test_claims_hand_out_pieces_in_file_order_and_a_lone_connection_streams_on() -> None:
    table = SegmentTable.fresh(100 * MiB + 5)
    pieces = [table.claim(16 * MiB, MiB) for _ in range(3)]
    assert [(p.start, p.end) for p in pieces] == [
        (0, 16 * MiB),
        (16 * MiB, 32 * MiB),
        (32 * MiB, 48 * MiB),
    ]
    rest = [s for s in table.segments if not s.active]
    assert [(s.start, s.end) for s in rest] == [(48 * MiB, 100 * MiB + 5)]
    assert all(s.start % ALIGN == 0 for s in table.segments)
    lone = SegmentTable.fresh(100 * MiB)
    whole = lone.claim(16 * MiB, MiB, whole=True)
    assert (whole.start, whole.end) == (0, 100 * MiB)
    tail = SegmentTable.fresh(17 * MiB)  # a remainder below min_segment goes with the piece
    assert tail.claim(16 * MiB, 2 * MiB).end == 17 * MiB


def test_with_nothing_idle_a_busy_segment_is_cut_behind_its_owner() -> None:
    table = SegmentTable.fresh(256 * MiB)
    first = table.claim(32 * MiB, MiB, reserve=4 * MiB, whole=True)  # streams the whole file
    table.advance(first, 10 * MiB)
    second = table.claim(32 * MiB, MiB, reserve=4 * MiB)
    assert first.end == 42 * MiB  # keeps one piece beyond where it is
    assert (second.start, second.end) == (42 * MiB, 74 * MiB)
    assert [(s.start, s.end) for s in table.segments if not s.active] == [(74 * MiB, 256 * MiB)]
    # the end game: only busy segments left; one is halved, never closer than the reserve
    end = SegmentTable.fresh(12 * MiB)
    only = end.claim(32 * MiB, MiB, reserve=4 * MiB)
    thief = end.claim(32 * MiB, MiB, reserve=4 * MiB)
    assert thief is not None and thief.start == only.end == 6 * MiB
    more = [end.claim(32 * MiB, MiB, reserve=4 * MiB) for _ in range(3)]
    assert [(s.start, s.end) for s in more if s] == [(4 * MiB, 6 * MiB), (10 * MiB, 12 * MiB)]
    assert more[2] is None  # every cut would now fall within 4 MiB of an owner or leave < 1 MiB


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
    table = SegmentTable(40 * MiB, [Segment(i * 10 * MiB, (i + 1) * 10 * MiB) for i in range(4)])
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
    table = load_table(file)  # a sidecar for other content: start over
    assert table.written() == 0 and len(table.segments) == 1 and not partial_path(file).exists()


def test_prefix_hasher_reads_only_the_contiguous_prefix_and_ends_with_the_last_byte(
    tmp_path: Path,
) -> None:
    data = os.urandom(12 * MiB + 123)
    file = _planned(tmp_path, data)
    path = tmp_path / "f.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    cuts = [0, 4 * MiB, 8 * MiB, len(data)]
    table = SegmentTable(len(data), [Segment(a, b) for a, b in zip(cuts, cuts[1:], strict=False)])
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
    from leviathan_tui.render.manifests import _configmap_items, agent_configmap

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
            "import sys, runpy; sys.path.insert(0, sys.argv[1]); sys.argv = ['fetch', '--help']\n"
            "try:\n"
            "    runpy.run_module('leviathan_tui.agent.fetch', run_name='__main__')\n"
            "finally:\n"
            "    print('MODULES', *sorted({m.split('.')[0] for m in sys.modules}))",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--connections-per-file" in proc.stdout
    loaded = proc.stdout.split("MODULES", 1)[1].split()
    third_party = [m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_")]
    assert third_party == ["leviathan_tui"], third_party  # stdlib only until the Hub is listed
