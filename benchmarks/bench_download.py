"""Download-phase figures, each against a reference measured in the same run.

The bytes travel the Hub's real path: the Hub stand-in answers `/resolve/` with a 302 to a signed
URL on nginx (Debian's, started here on 127.0.0.1 with Range support), which holds the shards.

- verify: full re-check (parallel hashing) of >= 2 GB vs one sequential `sha256sum`;
- open (no cap): the agent vs `curl` with the same number of parallel transfers (3 files, one
  connection each); hashing cost (the same download with hashing off); the agent's CPU per GB split
  into transfer, hashing and events; restart to first new byte after a kill -9;
- CDN: nginx caps each connection (`limit_rate`) and a token-bucket qdisc on the loopback of a
  private network namespace caps the total (the link); the agent vs `aria2c -x8 -s8` (Debian's
  aria2) and vs `hf download` (huggingface_hub's client), same files, same run.

Missing tools (nginx, aria2c, curl) are installed with apt-get when running as root.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._figure import Figure, info

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPO = "bench/model"
FOLDER = "Q"
FILES = 3
SHARD_MIB = 1024
PER_CONNECTION_BYTES_S = 40_000_000  # nginx limit_rate: one CDN connection
# the total cap in the CDN scenario: below what this 2-core machine can move with server, shaper
# and client all on it, so that the link, not the CPU, is the limit (as on a many-core GPU node)
LINK_BYTES_S = 250_000_000
RUNS = 3


# --- tools ---------------------------------------------------------------------------------


def _tool(binary: str, package: str) -> str:
    """The binary's path; installed from Debian with apt-get when missing (as the tests do)."""
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{binary} is missing: install the Debian package {package}")
    info(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", package],
        check=True,
        capture_output=True,
        env=env,
    )
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if not found:
        raise RuntimeError(f"{binary} still missing after installing {package}")
    return found


def _free_port() -> int:
    from tests.support.services import free_port

    return free_port()


def _wait_port(port: int, timeout: float = 10.0) -> None:
    from tests.support.services import wait_port

    wait_port(port, timeout)


class Nginx:
    """nginx serving `root` on 127.0.0.1 with sendfile and Range, optionally capped per connection."""

    def __init__(self, directory: Path, root: Path, limit_rate: int | None) -> None:
        self.directory = directory
        self.port = _free_port()
        directory.mkdir(parents=True, exist_ok=True)
        rate = f"limit_rate {limit_rate};" if limit_rate else ""
        (directory / "nginx.conf").write_text(
            f"user root;\nworker_processes 2;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n"
            "  keepalive_requests 10000;\n  default_type application/octet-stream;\n"
            f"  client_body_temp_path {directory}/body;\n  proxy_temp_path {directory}/proxy;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    root {root};\n"
            f"    location / {{ {rate} }}\n  }}\n}}\n"
        )
        binary = _tool("nginx", "nginx")
        self.process = subprocess.Popen(
            [
                binary,
                "-p",
                str(directory),
                "-c",
                str(directory / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)


@dataclass
class Serving:
    """The Hub stand-in redirecting to nginx, which holds the shards."""

    work: Path
    shards: list[Path]
    limit_rate: int | None
    hub: Any = None
    nginx: Nginx | None = None

    def __enter__(self) -> Serving:
        from tests.support.hub_standin import HubStandIn

        root = self.work / "cdn-root"
        self.nginx = Nginx(self.work / "nginx", root, self.limit_rate)
        self.hub = HubStandIn(cdn_url=self.nginx.url)
        for shard in self.shards:
            self.hub.add_file(REPO, f"{FOLDER}/{shard.name}", shard)
        for path, data in self.hub.cdn_files().items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(data, target)
        self.hub.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.stop()
        assert self.nginx is not None
        self.nginx.stop()

    @property
    def endpoint(self) -> str:
        return self.hub.url

    def resolve_urls(self) -> list[tuple[str, str]]:
        sha = self.hub.repos[REPO].sha
        return [
            (s.name, f"{self.endpoint}/{REPO}/resolve/{sha}/{FOLDER}/{s.name}") for s in self.shards
        ]


def _make_files(directory: Path, count: int, size: int, stem: str = "shard") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(8 << 20)
    paths = []
    for i in range(count):
        path = directory / f"{stem}-{i + 1:05d}-of-{count:05d}.bin"  # random bytes: no GGUF parsing
        with open(path, "wb") as handle:
            written = 0
            while written < size:
                chunk = block[: min(len(block), size - written)]
                handle.write(chunk)
                written += len(chunk)
        paths.append(path)
    return paths


def _env(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    env.pop("HF_TOKEN", None)
    return env


# --- clients -------------------------------------------------------------------------------


@dataclass
class AgentRun:
    wall_s: float
    transfer_s: float  # plan event to result: the transfer itself
    cpu_s: dict[str, float]
    events: list[dict[str, Any]] = field(repr=False)

    @property
    def hash_waits(self) -> list[float]:
        """Per file: seconds from its last byte on disk to its digest."""
        return [e["hash_wait_s"] for e in self.events if e["event"] == "file_done"]


def _agent_cmd(dest: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leviathan_tui.agent.fetch",
        "--repo",
        REPO,
        "--include",
        f"{FOLDER}/*.bin",
        "--dest",
        str(dest),
        "--parallel",
        str(FILES),
        *flags,
    ]


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _agent(endpoint: str, dest: Path, *flags: str) -> AgentRun:
    shutil.rmtree(dest, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run(
        _agent_cmd(dest, *flags), capture_output=True, text=True, env=_env(endpoint)
    )
    wall = time.perf_counter() - start
    events = _events(proc.stdout)
    if proc.returncode != 0 or not events or events[-1].get("status") != "done":
        raise RuntimeError(f"agent failed: {proc.stdout[-600:]} {proc.stderr[-600:]}")
    plan_ts = next(e["ts"] for e in events if e["event"] == "plan")
    return AgentRun(wall, events[-1]["ts"] - plan_ts, events[-1].get("cpu_s") or {}, events)


def _timed(commands: list[list[str]], dest: Path, env: dict[str, str] | None = None) -> float:
    return _timed_cpu(commands, dest, env)[0]


def _timed_cpu(
    commands: list[list[str]], dest: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of the commands run at once."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=dest)
        for c in commands
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"{commands[0][0]} failed: {err.decode()[-500:]}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def _curl(urls: list[tuple[str, str]], dest: Path) -> tuple[float, float]:
    curl = _tool("curl", "curl")
    return _timed_cpu([[curl, "-sSfL", "-o", name, url] for name, url in urls], dest)


def _aria2(urls: list[tuple[str, str]], dest: Path) -> float:
    aria2c = _tool("aria2c", "aria2")
    dest.mkdir(parents=True, exist_ok=True)
    listing = dest.parent / "aria2-input.txt"
    listing.write_text("".join(f"{url}\n  out={name}\n" for name, url in urls))
    return _timed(
        [
            [
                aria2c,
                "-x8",
                "-s8",
                f"-j{len(urls)}",
                "--file-allocation=none",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
                "--console-log-level=warn",
                "--summary-interval=0",
                "--download-result=hide",
                "-d",
                str(dest),
                "-i",
                str(listing),
            ]
        ],
        dest,
    )


def _hf(endpoint: str, dest: Path) -> float:
    hf = shutil.which("hf", path=str(Path(sys.executable).parent)) or shutil.which("hf")
    if hf is None:
        raise RuntimeError("hf is missing: pip install huggingface_hub")
    return _timed(
        [[hf, "download", REPO, "--include", f"{FOLDER}/*.bin", "--local-dir", str(dest), "-q"]],
        dest,
        env=_env(endpoint),
    )


def _median(values: list[float]) -> float:
    return statistics.median(values)


# --- verify --------------------------------------------------------------------------------


def sha256_cpu_per_gb() -> float:
    """CPU seconds per GB of hashlib's sha256 over bytes in memory: the floor for hashing here
    (the same library the agent uses; coreutils' sha256sum is far slower on some machines)."""
    block = os.urandom(64 << 20)
    hasher = hashlib.sha256()
    started = time.thread_time()
    for _ in range(8):
        hasher.update(block)
    return (time.thread_time() - started) / (8 * len(block) / 1e9)


def verification(work: Path) -> list[Figure]:
    from leviathan_tui.agent import fetch

    files = _make_files(work / "verify", 4, 512 * 2**20)
    total = sum(p.stat().st_size for p in files)
    planned = [
        fetch.PlannedFile("r", "sha", p.name, p.stat().st_size, None, None, p) for p in files
    ]
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)
    start = time.perf_counter()
    out = subprocess.run(
        ["sha256sum", *map(str, files)], capture_output=True, text=True, check=True
    ).stdout
    ref_s = time.perf_counter() - start
    digests = {Path(line.split()[1]).name: line.split()[0] for line in out.splitlines()}
    for f in planned:
        f.sha256 = digests[f.name]
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
    shutil.rmtree(work / "verify")
    mb = total / 1e6
    return [
        Figure(
            "verify.parallel_vs_sha256sum",
            (mb / ours_s) / (mb / ref_s),
            "x",
            ">=1.0",
            f"{mb / ours_s:.0f} MB/s vs sha256sum {mb / ref_s:.0f} MB/s over {total / 1e9:.1f} GB",
        ),
    ]


# --- open: no cap ----------------------------------------------------------------------------


def open_scenario(work: Path, shards: list[Path], sha256_floor: float) -> list[Figure]:
    total = sum(s.stat().st_size for s in shards)
    gb, mb = total / 1e9, total / 1e6
    one = ("--connections-per-file", "1")
    with Serving(work / "open", shards, limit_rate=None) as served:
        urls = served.resolve_urls()
        _agent(served.endpoint, work / "dl", *one, "--no-hash")  # warm: page cache, imports
        hashed, plain, curl = [], [], []
        for _ in range(RUNS):  # interleaved, so drift in machine load hits each alike
            hashed.append(_agent(served.endpoint, work / "dl", *one))
            plain.append(_agent(served.endpoint, work / "dl", *one, "--no-hash"))
            curl.append(_curl(urls, work / "dl"))
        resume = _resume(served.endpoint, work, total)
    t_hash = _median([r.transfer_s for r in hashed])
    t_plain = _median([r.transfer_s for r in plain])
    t_curl = _median([c[0] for c in curl])
    curl_cpu = _median([c[1] for c in curl]) / gb
    wall_hash = _median([r.wall_s for r in hashed])
    cpu = {k: _median([r.cpu_s.get(k, 0.0) for r in hashed]) / gb for k in hashed[0].cpu_s}
    steady = cpu.get("transfer", 0.0) + cpu.get("hashing", 0.0) + cpu.get("events", 0.0)
    return [
        Figure(
            "download.open.agent_vs_curl",
            t_curl / t_hash,
            "x",
            ">=0.9",
            f"agent {mb / t_hash:.0f} MB/s plan to last byte, hashing, {FILES} files x 1 connection, "
            f"vs curl {mb / t_curl:.0f} MB/s ({FILES} at once) through the same redirect to nginx; "
            f"with the agent's start-up and Hub listing: {mb / wall_hash:.0f} MB/s",
        ),
        Figure(
            "download.open.hashing_cost",
            t_hash / t_plain,
            "x",
            "<=1.05",
            f"{t_hash:.2f} s with sha256 beside the transfer vs {t_plain:.2f} s without, {mb:.0f} MB",
        ),
        Figure(
            "download.agent_cpu_per_gb",
            cpu.get("process", 0.0),
            "cpu-s/GB",
            "<=1.2",
            f"whole agent process; transfer {cpu.get('transfer', 0):.2f} + hashing {cpu.get('hashing', 0):.2f} "
            f"+ events {cpu.get('events', 0):.3f}, the rest start-up and listing; "
            f"sha256 alone {sha256_floor:.2f}",
        ),
        Figure(
            "download.agent_cpu_vs_floor",
            steady / (curl_cpu + sha256_floor),
            "x",
            "<=1.1",
            f"agent transfer + hashing + events {steady:.2f} cpu-s/GB vs curl's whole CPU for the "
            f"same bytes {curl_cpu:.2f} + sha256 alone {sha256_floor:.2f} (hashlib, in memory)",
        ),
        Figure(
            "download.cpu_per_gb.transfer",
            cpu.get("transfer", 0.0),
            "cpu-s/GB",
            "<=0.45",
            f"receive + write + bookkeeping; curl spends {curl_cpu:.2f} to receive and write the same",
        ),
        Figure(
            "download.cpu_per_gb.hashing",
            cpu.get("hashing", 0.0),
            "cpu-s/GB",
            f"<={max(0.8, sha256_floor * 1.1):.2f}",
            "the hash threads (sha256 over mmap windows of the page cache)",
        ),
        Figure("download.cpu_per_gb.events", cpu.get("events", 0.0), "cpu-s/GB", "<=0.02"),
        Figure(
            "download.open.hash_ready_after_last_byte",
            max(w for r in hashed for w in r.hash_waits),
            "s",
            "<=0.5",
            "slowest file of all runs: from its last byte on disk to its sha256",
        ),
        *resume,
    ]


def _resume(endpoint: str, work: Path, total: int) -> list[Figure]:
    """Kill -9 an agent half-way, then time a restart to its first new byte, with the recorded
    plan (--reuse-plan) and with a fresh Hub listing."""
    half = work / "half"
    shutil.rmtree(half, ignore_errors=True)
    proc = subprocess.Popen(
        _agent_cmd(half, "--max-bytes-per-s", "300000000"),
        stdout=subprocess.DEVNULL,
        env=_env(endpoint),
        start_new_session=True,
    )
    partial = half / ".leviathan" / "partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        on_disk = sum(p.stat().st_size for p in partial.glob("*.part")) if partial.exists() else 0
        if on_disk >= total // 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = work / "half-saved"  # the killed state, put back before each restart at the same path
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(half, saved)
    figures = []
    for label, flags in (("reuse_plan", ("--reuse-plan",)), ("fresh_listing", ())):
        times = []
        for _ in range(RUNS):
            shutil.rmtree(half, ignore_errors=True)
            shutil.copytree(saved, half)
            start = time.time()
            proc = subprocess.Popen(
                _agent_cmd(half, *flags),
                stdout=subprocess.PIPE,
                text=True,
                env=_env(endpoint),
                start_new_session=True,
            )
            assert proc.stdout is not None
            first = None
            reused = None
            for line in proc.stdout:
                if line.startswith("{") and '"plan"' in line:
                    reused = json.loads(line).get("reused")
                if line.startswith("{") and '"first_byte"' in line:
                    first = json.loads(line)
                    break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if first is None:
                raise RuntimeError("the restarted agent sent no byte")
            if reused != (label == "reuse_plan"):
                raise RuntimeError(f"{label}: the plan event says reused={reused}")
            times.append(first["ts"] - start)
        figures.append(
            Figure(
                f"download.restart_to_first_byte.{label}",
                _median(times),
                "s",
                "<=2",
                "agent started on a dest killed a third of the way, to its first new byte on disk "
                "(the agent's share of the phase's restart; the wizard adds pod start-up)",
            )
        )
    shutil.rmtree(half, ignore_errors=True)
    shutil.rmtree(saved, ignore_errors=True)
    return figures


# --- CDN: capped connections, capped link ----------------------------------------------------


def cdn_measurements(work: Path, shards: list[Path], link_capped: bool) -> dict[str, Any]:
    """Runs where the link cap is in force (inside the private network namespace)."""
    eight = ("--connections-per-file", "8", "--max-connections", str(8 * FILES))
    with Serving(work / "cdn", shards, limit_rate=PER_CONNECTION_BYTES_S) as served:
        urls = served.resolve_urls()
        agent, plain, aria2 = [], [], []
        for _ in range(RUNS):
            agent.append(_agent(served.endpoint, work / "dl", *eight))
            plain.append(_agent(served.endpoint, work / "dl", *eight, "--no-hash"))
            aria2.append(_aria2(urls, work / "dl"))
        auto = _agent(served.endpoint, work / "dl")
        hf = _hf(served.endpoint, work / "dl")
        shutil.rmtree(work / "dl", ignore_errors=True)
    return {
        "link_capped": link_capped,
        "agent": [r.transfer_s for r in agent],
        "agent_wall": [r.wall_s for r in agent],
        "plain": [r.transfer_s for r in plain],
        "hash_waits": [w for r in agent for w in r.hash_waits],
        "aria2": aria2,
        "auto": auto.transfer_s,
        "auto_per_file": [e["per_file"] for e in auto.events if e["event"] == "connections"],
        "hf": hf,
    }


def _cdn_in_namespace(work: Path, shards: list[Path]) -> dict[str, Any]:
    """The CDN runs inside `unshare --net`: a loopback of its own, shaped by a tbf qdisc, so the
    link cap touches nothing else on the machine; without that, only the per-connection cap."""
    ok = os.geteuid() == 0 and all(shutil.which(t) for t in ("unshare", "ip", "tc"))
    if ok:
        rate_mbit = LINK_BYTES_S * 8 // 1_000_000
        script = (
            "ip link set lo up && "
            f"tc qdisc add dev lo root tbf rate {rate_mbit}mbit burst 4mb latency 100ms && "
            'exec "$0" -m benchmarks.bench_download cdn-child "$1" "$2"'
        )
        proc = subprocess.run(
            ["unshare", "--net", "--", "sh", "-c", script, sys.executable, str(work)]
            + [",".join(map(str, shards))],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        sys.stderr.write(proc.stderr)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("CDN ")]
        if proc.returncode == 0 and lines:
            return json.loads(lines[-1][4:])
        info(f"private network namespace unavailable ({proc.stderr.strip()[-200:]}): no link cap")
    return cdn_measurements(work, shards, link_capped=False)


def cdn_scenario(work: Path, shards: list[Path]) -> list[Figure]:
    m = _cdn_in_namespace(work, shards)
    mb = sum(s.stat().st_size for s in shards) / 1e6
    t_agent, t_plain = _median(m["agent"]), _median(m["plain"])
    t_aria2 = _median(m["aria2"])
    link = f"{LINK_BYTES_S / 1e6:.0f} MB/s link" if m["link_capped"] else "no link cap"
    caps = f"{PER_CONNECTION_BYTES_S / 1e6:.0f} MB/s per connection, {link}"
    return [
        Figure(
            "download.cdn.agent_vs_aria2",
            t_aria2 / t_agent,
            "x",
            ">=0.9",
            f"agent {mb / t_agent:.0f} MB/s (8 connections per file, hashing, plan to last byte; "
            f"{mb / _median(m['agent_wall']):.0f} MB/s with start-up and listing) vs aria2c -x8 -s8 "
            f"{mb / t_aria2:.0f} MB/s; {caps}",
        ),
        Figure(
            "download.cdn.hashing_cost",
            t_agent / t_plain,
            "x",
            "<=1.05",
            f"{t_agent:.2f} s with sha256 vs {t_plain:.2f} s without; {caps}",
        ),
        Figure(
            "download.cdn.hash_ready_after_last_byte",
            max(m["hash_waits"]),
            "s",
            "<=0.5",
            "slowest file of all runs, 8 connections each taking pieces in file order",
        ),
        Figure(
            "download.cdn.agent_vs_hf_download",
            m["hf"] / t_agent,
            "x",
            ">=1.0",
            f"hf download {mb / m['hf']:.0f} MB/s (one connection per file, its start-up included)",
        ),
        Figure(
            "download.cdn.auto_vs_aria2",
            t_aria2 / m["auto"],
            "x",
            ">=0.9",
            f"agent with --connections-per-file auto {mb / m['auto']:.0f} MB/s; per-file counts it "
            f"tried: {m['auto_per_file']} (it measures for a few seconds; {mb / 1e3:.1f} GB is short)",
        ),
    ]


def run() -> list[Figure]:
    shm = Path("/dev/shm")
    need = (FILES * SHARD_MIB * 2 + 2048) * 2**20 * 2
    base = shm if shm.is_dir() and shutil.disk_usage(shm).free > need else None
    work = Path(tempfile.mkdtemp(prefix="lv-bench-", dir=base))
    try:
        info(f"download benchmarks in {work} (tmpfs keeps the disk out of the figures)")
        figures = verification(work)
        shards = _make_files(work / "serve", FILES, SHARD_MIB * 2**20)
        figures += open_scenario(work, shards, sha256_cpu_per_gb())
        figures += cdn_scenario(work, shards)
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["cdn-child"]:
    work_dir = Path(sys.argv[2])
    measured = cdn_measurements(work_dir, [Path(p) for p in sys.argv[3].split(",")], True)
    print("CDN " + json.dumps(measured), flush=True)
