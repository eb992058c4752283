"""End-to-end figures on the local sandbox (needs root, sshd, buildah, docker-registry):

- wall time of the bring-up with the download throttled to ~20 s and the build made to take ~20 s,
  against max(download, build) + the other phases: they must overlap, not add up;
- resume overhead: time from a restart after a kill mid-download to the first new byte requested.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks._figure import Figure, info


def _seconds(stamp: str) -> int:
    h, m, s = map(int, stamp.split(":"))
    return h * 3600 + m * 60 + s


def _spans(output: str) -> dict[str, tuple[int, int]]:
    spans: dict[str, list[int]] = {}
    for line in output.splitlines():
        match = re.match(r"(\d\d:\d\d:\d\d) (\S+)\s+(started|done)\b", line)
        if match:
            spans.setdefault(match.group(2), [0, 0])[0 if match.group(3) == "started" else 1] = (
                _seconds(match.group(1))
            )
    return {k: (v[0], v[1]) for k, v in spans.items()}


def run() -> list[Figure]:
    if os.geteuid() != 0 or not all(
        shutil.which(t) for t in ("buildah", "docker-registry", "losetup")
    ):
        info("e2e benchmarks skipped: need root, buildah, docker-registry, loop devices")
        return []
    from tests.e2e.sandbox import Sandbox
    from tests.support.services import buildah_shim, start_registry, start_sshd

    base = Path(tempfile.mkdtemp(prefix="lv-bench-e2e-"))
    shim = buildah_shim(base / "bin", delay_s=20.0)
    sshd = start_sshd(
        base / "sshd",
        env={"PATH": f"{shim}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    registry = start_registry(base / "registry")
    figures = []
    try:
        # 3 shards x 16 MiB, one connection each at 0.8 MiB/s: ~20 s of download
        box = Sandbox(
            base / "overlap",
            sshd,
            registry,
            shim,
            tag=f"bench-{uuid.uuid4().hex[:6]}",
            shard_mib=16,
            hub_rate=0.8 * 2**20,
        )
        try:
            start = time.perf_counter()
            result = box.run(timeout=600)
            total = time.perf_counter() - start
            assert result.code == 0, result.stdout[-2000:] + result.stderr
            spans = _spans(result.stdout)
            download = spans["download.fetch"][1] - spans["download.fetch"][0]
            build = spans["build.push"][1] - spans["build.image"][0]
            before = spans["storage.format"][1] - spans["preflight.node"][0]
            after = spans["deploy.health"][1] - spans["deploy.apply"][0]
            bound = 1.15 * max(download, build) + before + after
            figures.append(
                Figure(
                    "e2e.bringup_vs_overlap_bound",
                    total / bound,
                    "x",
                    "<=1.0",
                    f"bring-up {total:.1f} s; download {download} s, build+push {build} s, sum {download + build} s; "
                    f"bound 1.15 x max + storage {before} s + deploy {after} s = {bound:.1f} s",
                )
            )
        finally:
            box.close()
        # resume overhead: kill mid-download, restart, time to the first new Range request
        box = Sandbox(
            base / "resume",
            sshd,
            registry,
            shim,
            tag=f"bench-{uuid.uuid4().hex[:6]}",
            shard_mib=16,
            hub_rate=1 * 2**20,
        )
        try:
            box.run_until("download.fetch       progress", signal.SIGKILL)
            for run in list(
                box.kube.pods.values()
            ):  # the pod dies with the wizard: a real restart of both
                if run.process and run.process.poll() is None:
                    os.killpg(run.process.pid, signal.SIGKILL)
            seen = len(box.hub.requests)
            start_wall = time.time()
            start = time.perf_counter()
            import subprocess

            proc = subprocess.Popen(
                box.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=box.env()
            )
            first = None
            while time.perf_counter() - start < 120 and first is None:
                for r in box.hub.requests[seen:]:
                    if (
                        r.method == "GET"
                        and r.range
                        and r.range.startswith("bytes=")
                        and not r.range.startswith("bytes=0-")
                    ):
                        first = r.time - start_wall
                        break
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            import sys as _sys

            def import_time(modules: str) -> float:
                t0 = time.perf_counter()
                subprocess.run([_sys.executable, "-c", f"import {modules}"], check=True)
                return time.perf_counter() - t0

            wizard_clients = import_time("kubernetes, pydantic, yaml")  # the wizard's own start-up
            agent_client = import_time("huggingface_hub")  # the agent's, in the pod
            assert first is not None, "no resumed Range request seen"
            figures.append(
                Figure(
                    "e2e.resume_to_first_new_byte",
                    first,
                    "s",
                    f"<={2 + wizard_clients + agent_client:.2f}",
                    f"target = 2 s + the clients' start-up (wizard {wizard_clients:.2f} s, agent {agent_client:.2f} s); "
                    "includes the storage check pod and the agent's Hub listing",
                )
            )
        finally:
            box.close()
    finally:
        sshd.stop()
        registry.stop()
    return figures
