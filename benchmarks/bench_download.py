"""Download-phase figures, each against a reference measured in the same run:

- full re-check (parallel hashing) of >= 2 GB of shards vs one sequential `sha256sum`, with `dd`'s
  read rate of the same files as the disk limit;
- agent download time with hashing vs the same download with hashing disabled;
- agent download throughput vs `curl` of the same files from the same local endpoint, and the CPU
  the agent spent per GB (progress reporting included).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._figure import Figure, info

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _env(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def _make_files(directory: Path, count: int, size: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(8 << 20)
    paths = []
    for i in range(count):
        path = (
            directory / f"shard-{i + 1:05d}-of-{count:05d}.bin"
        )  # random bytes: hashing, not GGUF parsing
        with open(path, "wb") as handle:
            written = 0
            while written < size:
                chunk = block[: min(len(block), size - written)]
                handle.write(chunk)
                written += len(chunk)
        paths.append(path)
    return paths


def verification(work: Path) -> list[Figure]:
    from leviathan_tui.agent import fetch

    files = _make_files(work / "verify", 4, 512 * 2**20)
    total = sum(p.stat().st_size for p in files)
    planned = []
    for p in files:
        planned.append(fetch.PlannedFile("r", "sha", p.name, p.stat().st_size, None, None, p))
    # expected digests from sha256sum (this is also the reference timing)
    subprocess.run(
        ["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True
    )  # warm the cache equally
    start = time.perf_counter()
    out = subprocess.run(
        ["sha256sum", *map(str, files)], capture_output=True, text=True, check=True
    ).stdout
    ref_s = time.perf_counter() - start
    digests = {Path(line.split()[1]).name: line.split()[0] for line in out.splitlines()}
    for f in planned:
        f.sha256 = digests[f.name]
    start = time.perf_counter()
    for f in files:
        subprocess.run(["dd", f"if={f}", "of=/dev/null", "bs=8M"], capture_output=True, check=True)
    dd_s = time.perf_counter() - start
    devnull = open(os.devnull, "w")
    saved = sys.stdout
    sys.stdout = devnull  # the agent prints JSON events
    try:
        start = time.perf_counter()
        bad = fetch.verify_files(planned, workers=os.cpu_count() or 2)
        ours_s = time.perf_counter() - start
    finally:
        sys.stdout = saved
    assert not bad, bad
    mb = total / 1e6
    return [
        Figure(
            "verify.parallel_vs_sha256sum",
            (mb / ours_s) / (mb / ref_s),
            "x",
            ">=1.0",
            f"{mb / ours_s:.0f} MB/s vs sha256sum {mb / ref_s:.0f} MB/s over {total / 1e9:.1f} GB; dd reads {mb / dd_s:.0f} MB/s (page cache)",
        ),
    ]


def _agent_download(
    endpoint: str, dest: Path, repo: str, folder: str, no_hash: bool
) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, seconds from the plan to the result: the transfer itself)."""
    shutil.rmtree(dest, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "leviathan_tui.agent.fetch",
        "--repo",
        repo,
        "--include",
        f"{folder}/*.bin",
        "--dest",
        str(dest),
        "--parallel",
        "3",
    ]
    if no_hash:
        cmd.append("--no-hash")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(endpoint))
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-500:] + proc.stderr[-500:])
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    plan_ts = next(e["ts"] for e in events if e["event"] == "plan")
    transfer = events[-1]["ts"] - plan_ts
    return (
        elapsed,
        (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        transfer,
    )


def download(work: Path) -> list[Figure]:
    from tests.support.hub_standin import HubStandIn

    hub = HubStandIn()
    files = _make_files(work / "serve", 3, 256 * 2**20)
    for f in files:
        hub.add_file("bench/model", f"Q/{f.name}", f)
    url = hub.start()
    try:
        total = sum(f.stat().st_size for f in files)
        _agent_download(url, work / "warm", "bench/model", "Q", True)
        hashed = [_agent_download(url, work / "dl", "bench/model", "Q", False) for _ in range(3)]
        plain = [_agent_download(url, work / "dl", "bench/model", "Q", True) for _ in range(3)]
        t_hash = sorted(h[2] for h in hashed)[1]
        t_plain = sorted(p[2] for p in plain)[1]
        wall_hash = sorted(h[0] for h in hashed)[1]
        cpu_hash = sorted(h[1] for h in hashed)[1]
        curl_times = []
        for _ in range(3):
            out = work / "curl"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            start = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [
                        "curl",
                        "-s",
                        "-o",
                        str(out / f.name),
                        f"{url}/bench/model/resolve/main/Q/{f.name}",
                    ]
                )
                for f in files
            ]
            for p in procs:
                p.wait()
            curl_times.append(time.perf_counter() - start)
        t_curl = sorted(curl_times)[1]
    finally:
        hub.stop()
    mb = total / 1e6
    return [
        Figure(
            "download.hashing_cost",
            t_hash / t_plain,
            "x",
            "<=1.05",
            f"transfer {t_hash:.2f} s with sha256 while writing vs {t_plain:.2f} s without, {mb:.0f} MB",
        ),
        Figure(
            "download.agent_vs_curl",
            (mb / t_hash) / (mb / t_curl),
            "x",
            ">=0.9",
            f"agent {mb / t_hash:.0f} MB/s from plan to last byte (hashing, 3 at once) vs curl {mb / t_curl:.0f} MB/s (3 parallel); "
            f"with the agent's start-up and Hub listing: {mb / wall_hash:.0f} MB/s",
        ),
        Figure(
            "download.agent_cpu_per_gb",
            cpu_hash / (total / 1e9),
            "cpu-s/GB",
            "<=10",
            "agent process CPU (transfer + hashing + progress events)",
        ),
    ]


def run() -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="lv-bench-"))
    try:
        info("download benchmarks: writing ~2.8 GB of test files")
        return verification(work) + download(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
