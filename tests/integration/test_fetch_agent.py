"""The fetch agent with the real huggingface_hub client against the local Hub stand-in."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_env
from tests.support.gguf_shards import CONFIG_REPO, FOLDER, GGUF_REPO, publish
from tests.support.hub_standin import HubStandIn


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubStandIn, dict]]:
    h = HubStandIn()
    info = publish(h, tmp_path / "hub", shards=3, mib_per_shard=8)
    h.start()
    yield h, info
    h.stop()


def fetch_cmd(dest: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leviathan_tui.agent.fetch",
        "--repo",
        GGUF_REPO,
        "--include",
        f"{FOLDER}/*.gguf",
        "--dest",
        str(dest / FOLDER),
        "--config-repo",
        CONFIG_REPO,
        "--config-dest",
        str(dest / "config"),
        "--retry-for",
        "60",
        *extra,
    ]


def env_for(hub: HubStandIn) -> dict[str, str]:
    return run_env(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")


def run_fetch(
    hub: HubStandIn, dest: Path, *extra: str, timeout: float = 120
) -> tuple[int, list[dict]]:
    proc = subprocess.run(
        fetch_cmd(dest, *extra), capture_output=True, text=True, env=env_for(hub), timeout=timeout
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_download_verifies_and_second_run_fetches_nothing(hub, tmp_path: Path) -> None:
    h, info = hub
    code, events = run_fetch(h, tmp_path / "data")
    assert code == 0, events[-3:]
    assert events[-1]["status"] == "done" and events[-1]["verified"] is True
    plan = next(e for e in events if e["event"] == "plan")
    names = {f["name"] for f in plan["files"]}
    assert {p.name for p in info["shards"]} <= names
    assert {
        "config.json",
        "configuration_deepseek.py",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= names
    assert not any(n.endswith(".safetensors") for n in names)
    for shard in info["shards"]:
        assert sha(tmp_path / "data" / FOLDER / shard.name) == sha(shard)
    assert any(e["event"] == "progress" for e in events)
    served = sum(h.bytes_served.values())
    before = len(h.requests)
    code, events = run_fetch(h, tmp_path / "data")
    assert code == 0
    assert all(e.get("skipped") for e in events if e["event"] == "file_done")
    assert not any(r.method == "GET" and r.file for r in h.requests[before:])
    assert sum(h.bytes_served.values()) == served
    code, events = run_fetch(h, tmp_path / "data", "--check")
    assert code == 0


def part_bytes(partials: Path) -> int:
    """The bytes of the largest partly downloaded file (a finished one is renamed away)."""
    sizes = [0]
    for part in partials.glob("*.part"):
        try:
            sizes.append(part.stat().st_size)
        except FileNotFoundError:
            pass
    return max(sizes)


def test_server_outage_mid_shard_is_ridden_out(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 8 * 2**20
    proc = subprocess.Popen(
        fetch_cmd(tmp_path / "data", "--parallel", "1"),
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(h),
    )
    partials = tmp_path / "data" / FOLDER / ".leviathan" / "partial"
    deadline = time.monotonic() + 30  # mid shard: bytes are flowing, however long the start took
    while time.monotonic() < deadline and part_bytes(partials) < 2**20:
        time.sleep(0.02)
    assert part_bytes(partials) >= 2**20, "no shard was being downloaded"
    h.outage(3.0)
    out, _ = proc.communicate(timeout=120)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, events[-3:]
    assert any(e["event"] == "retry" for e in events)
    for shard in info["shards"]:
        assert sha(tmp_path / "data" / FOLDER / shard.name) == sha(shard)


def test_sigkill_mid_shard_resumes_with_range(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 6 * 2**20
    first = info["shards"][0]
    # one connection; the sidecar trails the file by at most one 1 MiB chunk in flight
    one_connection = ("--parallel", "1", "--connections-per-file", "1", "--buffer-bytes", "1048576")
    proc = subprocess.Popen(
        fetch_cmd(tmp_path / "data", *one_connection),
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(h),
        start_new_session=True,
    )
    partial = tmp_path / "data" / FOLDER / ".leviathan" / "partial" / f"{first.name}.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        not partial.exists() or partial.stat().st_size < 2 * 2**20
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    on_disk = partial.stat().st_size
    assert 0 < on_disk < first.stat().st_size
    h.rate_bytes_s = None
    requests_before = len(h.requests)
    code, events = run_fetch(h, tmp_path / "data", *one_connection)
    assert code == 0, events[-3:]
    ranges = [r.range for r in h.requests[requests_before:] if r.file == f"{FOLDER}/{first.name}"]
    assert ranges and ranges[0] is not None
    offset = int(ranges[0].split("=")[1].split("-")[0])
    assert on_disk - 2 * 2**20 <= offset <= on_disk, (offset, on_disk)
    assert sha(tmp_path / "data" / FOLDER / first.name) == sha(first)
    assert any(e["event"] == "resume" for e in events)


def test_corrupted_byte_is_named_and_only_that_shard_fetched_again(hub, tmp_path: Path) -> None:
    h, info = hub
    bad = info["shards"][1]
    h.corrupt[f"{FOLDER}/{bad.name}"] = 1
    code, events = run_fetch(h, tmp_path / "data")
    assert code == 0, events[-3:]
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[0]["file"] == bad.name and "checksum" in errors[0]["reason"]
    size = bad.stat().st_size
    assert h.bytes_served[f"{FOLDER}/{bad.name}"] == 2 * size
    for good in (info["shards"][0], info["shards"][2]):
        assert h.bytes_served[f"{FOLDER}/{good.name}"] == good.stat().st_size
    assert sha(tmp_path / "data" / FOLDER / bad.name) == sha(bad)


def test_verify_only_names_a_corrupt_file_on_disk(hub, tmp_path: Path) -> None:
    h, info = hub
    assert run_fetch(h, tmp_path / "data")[0] == 0
    target = tmp_path / "data" / FOLDER / info["shards"][2].name
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x01
    target.write_bytes(bytes(data))
    code, events = run_fetch(h, tmp_path / "data", "--verify-only")
    assert code == 1
    assert events[-1]["bad"] == [target.name]
    assert [e["file"] for e in events if e["event"] == "corrupt"] == [target.name]
    # a normal run trusts size + record, so the explicit check is what finds it; after it, the file is fetched again
    code, _ = run_fetch(h, tmp_path / "data")
    assert code == 0 and sha(target) == sha(info["shards"][2])


def test_missing_shard_fails_the_gguf_set_check(hub, tmp_path: Path) -> None:
    h, info = hub
    del h.repos[GGUF_REPO].files[f"{FOLDER}/{info['shards'][1].name}"]
    code, events = run_fetch(h, tmp_path / "data")
    assert code == 1 and "shards missing: [2]" in json.dumps(events)


def test_unknown_repo_and_quant_are_clear(hub, tmp_path: Path) -> None:
    h, _ = hub
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leviathan_tui.agent.fetch",
            "--repo",
            "nobody/nothing",
            "--include",
            "*.gguf",
            "--dest",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        env=env_for(h),
        timeout=60,
    )
    assert proc.returncode == 1 and "repository nobody/nothing not found" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leviathan_tui.agent.fetch",
            "--repo",
            GGUF_REPO,
            "--include",
            "DeepSeek-V3-Q9_Z/*.gguf",
            "--dest",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        env=env_for(h),
        timeout=60,
    )
    assert proc.returncode == 1 and "DeepSeek-V3-Q2_K_XS" in proc.stdout and FOLDER in proc.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_not_enough_space_is_refused_before_any_byte(hub, tmp_path: Path) -> None:
    h, _ = hub
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        code, events = run_fetch(h, small)
        assert code == 1
        assert events[-1]["status"] == "refused" and "short" in events[-1]["reason"]
        assert sum(h.bytes_served.values()) == 0
    finally:
        subprocess.run(["umount", str(small)], check=True)


# --- the Hub's real download path -------------------------------------------------------------

SEGMENTED = (
    "--connections-per-file",
    "4",
    "--min-segment-bytes",
    str(2**20),
    "--buffer-bytes",
    str(2**20),
)


def events_of(proc_out: str) -> list[dict]:
    return [json.loads(line) for line in proc_out.splitlines() if line.startswith("{")]


def read_sidecar(path: Path) -> list[list[int]]:
    """The segment rows [start, end, done]; [] while the sidecar is being created."""
    try:
        return json.loads(path.read_text())["segments"]
    except (OSError, ValueError, KeyError):
        return []


def test_the_token_goes_to_the_hub_never_to_the_cdn(hub, tmp_path: Path) -> None:
    h, info = hub
    proc = subprocess.run(
        fetch_cmd(tmp_path / "data"),
        capture_output=True,
        text=True,
        env={**env_for(h), "HF_TOKEN": "hf_standin_secret"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    resolves = [r for r in h.requests if r.server == "hub" and "/resolve/" in r.path]
    assert resolves and all(r.token for r in resolves)
    cdn = h.cdn_requests()
    assert {r.file for r in cdn} >= {f"{FOLDER}/{s.name}" for s in info["shards"]}
    assert not any(r.token for r in cdn)
    assert "hf_standin_secret" not in proc.stdout


def test_segmented_download_spreads_one_file_over_several_ranges(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 8 * 2**20  # per connection: more connections are faster
    code, events = run_fetch(h, tmp_path / "data", "--parallel", "1", *SEGMENTED)
    assert code == 0, events[-3:]
    for shard in info["shards"]:
        ranges = h.ranges_for(f"{FOLDER}/{shard.name}")
        starts = sorted(int(r.split("=")[1].split("-")[0]) for r in ranges if r)
        assert len(starts) >= 3 and starts[0] == 0, ranges
        assert sha(tmp_path / "data" / FOLDER / shard.name) == sha(shard)
        assert h.bytes_served[f"{FOLDER}/{shard.name}"] <= shard.stat().st_size * 1.25
    assert max(e.get("connections", 0) for e in events if e["event"] == "progress") >= 2
    assert not list((tmp_path / "data" / FOLDER / ".leviathan" / "partial").iterdir())


def test_sigkill_mid_segments_resumes_each_segment_from_its_bytes(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 2 * 2**20
    first = info["shards"][0]
    cmd = fetch_cmd(tmp_path / "data", "--parallel", "1", *SEGMENTED)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env=env_for(h), start_new_session=True
    )
    meta = tmp_path / "data" / FOLDER / ".leviathan" / "partial"
    sidecar = meta / f"{first.name}.segments.json"
    deadline = time.monotonic() + 30
    rows: list[list[int]] = []
    while time.monotonic() < deadline:
        rows = read_sidecar(sidecar)
        if sum(1 for s, e, d in rows if 0 < d < e - s) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = read_sidecar(sidecar)
    unfinished = [(s, e, d) for s, e, d in rows if d < e - s]
    assert len(unfinished) >= 3, rows
    # what the sidecar counts is really on disk
    source = first.read_bytes()
    partial = (meta / f"{first.name}.part").read_bytes()
    for start, _end, done in rows:
        assert partial[start : start + done] == source[start : start + done]

    h.rate_bytes_s = None
    before = len(h.requests)
    code, events = run_fetch(h, tmp_path / "data", "--parallel", "1", *SEGMENTED)
    assert code == 0, events[-3:]
    resume = next(e for e in events if e["event"] == "resume" and e["file"] == first.name)
    assert sorted(tuple(p) for p in resume["segments"]) == [(s + d, e) for s, e, d in unfinished]
    new_ranges = [
        r.range for r in h.requests[before:] if r.file == f"{FOLDER}/{first.name}" and r.range
    ]
    spans = [tuple(int(x) for x in r.split("=")[1].split("-")) for r in new_ranges]
    assert {a for a, _ in spans} >= {s + d for s, _e, d in unfinished}
    for start, _end, done in rows:  # no byte already on disk was asked for again
        assert all(b < start or a >= start + done for a, b in spans), (spans, rows)
    assert sha(tmp_path / "data" / FOLDER / first.name) == sha(first)


def test_the_hash_follows_the_download_and_is_ready_with_the_last_byte(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 6 * 2**20
    code, events = run_fetch(h, tmp_path / "data", "--parallel", "3", "--buffer-bytes", "1048576")
    assert code == 0, events[-3:]
    for shard in info["shards"]:
        mid = [
            e
            for e in events
            if e["event"] == "progress" and e["file"] == shard.name and e["done"] < e["total"]
        ]
        assert any(0 < e["hashed"] <= e["done"] for e in mid), mid
        done = next(e for e in events if e["event"] == "file_done" and e["file"] == shard.name)
        assert done["verified"] and done["digest"] == hashlib.sha256(shard.read_bytes()).hexdigest()
        assert done["hash_wait_s"] < 1.0


def test_corrupted_byte_with_segments_is_named_and_only_that_file_fetched_again(
    hub, tmp_path: Path
) -> None:
    h, info = hub
    bad = info["shards"][0]
    h.corrupt[f"{FOLDER}/{bad.name}"] = 1
    h.rate_bytes_s = 16 * 2**20
    code, events = run_fetch(h, tmp_path / "data", *SEGMENTED)
    assert code == 0, events[-3:]
    errors = [e for e in events if e["event"] == "error"]
    assert [e["file"] for e in errors] == [bad.name] and "checksum" in errors[0]["reason"]
    assert h.bytes_served[f"{FOLDER}/{bad.name}"] >= 2 * bad.stat().st_size * 0.9
    for good in info["shards"][1:]:
        assert h.bytes_served[f"{FOLDER}/{good.name}"] <= good.stat().st_size * 1.25
    assert sha(tmp_path / "data" / FOLDER / bad.name) == sha(bad)


def test_the_byte_cap_holds_across_all_connections(hub, tmp_path: Path) -> None:
    h, info = hub
    cap = 6 * 2**20
    code, events = run_fetch(h, tmp_path / "data", *SEGMENTED, "--max-bytes-per-s", str(cap))
    assert code == 0, events[-3:]
    total = sum(s.stat().st_size for s in info["shards"])
    plan = next(e for e in events if e["event"] == "plan")
    seconds = events[-1]["ts"] - plan["ts"]
    burst = max(4 << 20, cap / 4)  # what the bucket lets through before it starts to wait
    assert seconds >= (total - burst) / cap * 0.9, (seconds, total / cap)
    assert max(e.get("connections", 0) for e in events if e["event"] == "progress") >= 2


def test_auto_adds_connections_when_each_connection_is_capped(tmp_path: Path) -> None:
    h = HubStandIn()
    publish(h, tmp_path / "hub", shards=2, mib_per_shard=24)
    h.rate_bytes_s = 3 * 2**20
    h.start()
    try:
        code, events = run_fetch(
            h, tmp_path / "data", "--parallel", "2", "--min-segment-bytes", str(2**20)
        )
    finally:
        h.stop()
    assert code == 0, events[-3:]
    decisions = [e for e in events if e["event"] == "connections"]
    assert decisions and max(e["per_file"] for e in decisions) >= 2, decisions
    assert max(e.get("connections", 0) for e in events if e["event"] == "progress") >= 2


def test_an_expired_cdn_url_is_resolved_again(hub, tmp_path: Path) -> None:
    h, info = hub
    h.url_lifetime_s = 0.5
    h.rate_bytes_s = 4 * 2**20
    h.cut_after_bytes = 2 * 2**20  # every response ends early: the next one needs the URL again
    code, events = run_fetch(h, tmp_path / "data", "--parallel", "3")
    assert code == 0, events[-3:]
    assert any(r.status == 403 for r in h.cdn_requests())
    first = info["shards"][0]
    heads = [r for r in h.requests if r.method == "HEAD" and r.path.endswith(first.name)]
    assert len(heads) >= 2
    assert sha(tmp_path / "data" / FOLDER / first.name) == sha(first)


# --- one writer per destination ---------------------------------------------------------------


def _start_slow_agent(h: HubStandIn, dest: Path) -> subprocess.Popen[str]:
    h.rate_bytes_s = 2 * 2**20
    proc = subprocess.Popen(
        fetch_cmd(dest, "--parallel", "1"),
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(h),
        start_new_session=True,
    )
    lock = dest / FOLDER / ".leviathan" / "writer.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.05)
    return proc


def test_a_second_writer_is_refused_with_the_holder_named(hub, tmp_path: Path) -> None:
    h, _ = hub
    first = _start_slow_agent(h, tmp_path / "data")
    try:
        code, events = run_fetch(h, tmp_path / "data", "--lock-wait", "0")
        assert code == 1
        last = events[-1]
        assert last["status"] == "refused" and last["holder"]["pid"] == first.pid
        assert f"pid {first.pid}" in last["reason"] and "being written by" in last["reason"]
        assert not any(e["event"] in ("progress", "plan") for e in events)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    code, _ = run_fetch(h, tmp_path / "data", "--lock-wait", "0")  # the kill freed the lock
    assert code == 0


def test_a_second_writer_waits_for_the_first_to_finish(hub, tmp_path: Path) -> None:
    h, info = hub
    first = _start_slow_agent(h, tmp_path / "data")
    try:
        code, events = run_fetch(h, tmp_path / "data", "--lock-wait", "60")
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0 and code == 0, events[-3:]
    waits = [e for e in events if e["event"] == "lock_wait"]
    assert waits and waits[0]["holder"]["pid"] == first.pid
    # the second agent found everything done by the first: nothing written twice
    first_done = events_of(out)[-1]["ts"]
    plan = next(e for e in events if e["event"] == "plan")
    assert plan["ts"] >= first_done
    assert all(e.get("skipped") for e in events if e["event"] == "file_done")


# --- restart: the recorded plan first, the Hub listing alongside -----------------------------


def test_reuse_plan_sends_the_first_download_before_listing_the_hub(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 4 * 2**20
    proc = subprocess.Popen(
        fetch_cmd(tmp_path / "data", "--parallel", "1"),
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(h),
        start_new_session=True,
    )
    partial = tmp_path / "data" / FOLDER / ".leviathan" / "partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(partial.glob("*.part")):
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    h.rate_bytes_s = None
    before = len(h.requests)
    code, events = run_fetch(h, tmp_path / "data", "--reuse-plan")
    assert code == 0, events[-3:]
    run = h.requests[before:]
    first_get = next(i for i, r in enumerate(run) if r.method == "GET" and r.file)
    assert not any("/api/" in r.path for r in run[:first_get]), [r.path for r in run[:first_get]]
    assert any("/api/models" in r.path for r in run[first_get:])
    assert next(e for e in events if e["event"] == "plan")["reused"] is True
    assert any(e["event"] == "plan_checked" for e in events)
    assert any(e["event"] == "first_byte" for e in events)
    for shard in info["shards"]:
        assert sha(tmp_path / "data" / FOLDER / shard.name) == sha(shard)


def test_reuse_plan_stops_when_the_hub_listing_changed(hub, tmp_path: Path) -> None:
    h, info = hub
    assert run_fetch(h, tmp_path / "data")[0] == 0
    for name in os.listdir(tmp_path / "data" / FOLDER):
        if name.endswith(".gguf"):
            (tmp_path / "data" / FOLDER / name).unlink()
    changed = info["shards"][1]
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF
    replacement = tmp_path / "changed.gguf"
    replacement.write_bytes(bytes(data))
    h.add_file(GGUF_REPO, f"{FOLDER}/{changed.name}", replacement)
    code, events = run_fetch(h, tmp_path / "data", "--reuse-plan")
    assert code == 1
    assert next(e for e in events if e["event"] == "plan_changed")["files"] == [
        f"{FOLDER}/{changed.name}"
    ]
    assert "changed since the recorded plan" in events[-1]["reason"]
    assert not (tmp_path / "data" / FOLDER / ".leviathan" / "plan.json").exists()
    code, _ = run_fetch(h, tmp_path / "data", "--reuse-plan")  # plans afresh
    assert code == 0
    assert sha(tmp_path / "data" / FOLDER / changed.name) == sha(replacement)


def test_ctrl_c_ends_the_transfers_promptly_and_keeps_what_is_on_disk(hub, tmp_path: Path) -> None:
    h, info = hub
    h.rate_bytes_s = 2 * 2**20
    proc = subprocess.Popen(
        fetch_cmd(tmp_path / "data"), stdout=subprocess.PIPE, text=True, env=env_for(h)
    )
    sidecars = tmp_path / "data" / FOLDER / ".leviathan" / "partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        sum(r[2] for r in read_sidecar(p)) > 0 for p in sidecars.glob("*.segments.json")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15  # promptly, even on a slow machine
    last = events_of(out)[-1]
    assert last["status"] == "failed" and "interrupted" in last["reason"]
    assert "Traceback" not in out
    h.rate_bytes_s = None
    code, events = run_fetch(h, tmp_path / "data")
    assert code == 0 and any(e["event"] == "resume" for e in events)
    for shard in info["shards"]:
        assert sha(tmp_path / "data" / FOLDER / shard.name) == sha(shard)


def test_huggingface_hub_itself_downloads_through_the_standin_redirect(hub, tmp_path: Path) -> None:
    """The stand-in's redirect is what huggingface_hub 2.4.0 expects of the Hub: metadata on the
    302, bytes from the CDN, the token kept on the Hub."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    h, info = hub
    shard = info["shards"][0]
    url = hf_hub_url(GGUF_REPO, f"{FOLDER}/{shard.name}", endpoint=h.url)
    meta = get_hf_file_metadata(url, token="hf_standin_secret")
    assert meta.size == shard.stat().st_size and meta.etag == sha(shard)
    assert meta.location.startswith(h.cdn_url) and meta.commit_hash == h.repos[GGUF_REPO].sha
    got = hf_hub_download(
        GGUF_REPO,
        f"{FOLDER}/{shard.name}",
        endpoint=h.url,
        token="hf_standin_secret",
        local_dir=tmp_path / "hf",
    )
    assert sha(Path(got)) == sha(shard)
    assert h.cdn_requests() and not any(r.token for r in h.cdn_requests())
    config = hf_hub_download(
        CONFIG_REPO, "config.json", endpoint=h.url, local_dir=tmp_path / "hf-config"
    )
    assert json.loads(Path(config).read_text())["num_hidden_layers"] == 61


def test_the_hub_client_transfer_says_verified_only_after_the_hash_is_checked(
    hub, tmp_path: Path
) -> None:
    """With `--transfer xet` huggingface_hub writes the file; the agent hashes it afterwards. A file
    is reported done (and verified) only once that check has passed, and a corrupt one is named."""
    h, info = hub
    bad = info["shards"][1]
    h.corrupt[f"{FOLDER}/{bad.name}"] = 1
    code, events = run_fetch(h, tmp_path / "data", "--transfer", "xet")
    done = {e["file"]: e for e in events if e["event"] == "file_done"}
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[0]["file"] == bad.name and "checksum" in errors[0]["reason"], errors
    assert all(e["verified"] is True for e in done.values()), done
    for good in (info["shards"][0], info["shards"][2]):
        assert good.name in done
        assert sha(tmp_path / "data" / FOLDER / good.name) == sha(good)
    if bad.name in done:  # fetched again, this time whole
        assert sha(tmp_path / "data" / FOLDER / bad.name) == sha(bad)
        assert code == 0, events[-3:]
