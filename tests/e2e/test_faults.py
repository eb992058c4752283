"""Faults the sandbox can inject: Hub outage, SSH cut, registry down, API 500s, a disk too small."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from tests.e2e.conftest import pytestmark as _requirements
from tests.e2e.sandbox import Sandbox

pytestmark = [_requirements]


def when_printed(
    box: Sandbox, pattern: str, action, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the wizard; call `action` once a line with `pattern` appears; return the finished run."""
    proc = subprocess.Popen(
        box.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=box.env()
    )
    lines: list[str] = []
    fired = False
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if not fired and pattern in line:
            fired = True
            threading.Thread(target=action, daemon=True).start()
        if time.monotonic() > deadline:
            proc.kill()
            break
    err = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    assert fired, "".join(lines)[-2000:]
    box.transcript.append("".join(lines) + err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), err)


@pytest.mark.slow
def test_hub_down_for_20_seconds_mid_download(sandbox_factory) -> None:
    box = sandbox_factory(hub_rate=1 * 2**20)
    result = when_printed(box, "download.fetch       progress", lambda: box.hub.outage(20.0))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "network error" in result.stdout and "retry" in result.stdout
    largest = max(p.stat().st_size for p in box.published["shards"])
    assert box.bytes_served() <= box.shard_total() + 3 * largest


def test_ssh_cut_mid_build(sandbox_factory) -> None:
    box = sandbox_factory()
    result = when_printed(box, "build.image          log      STEP 1", box.sshd.kill_sessions)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "SSH connection lost" in result.stdout
    assert box.builds() == 1


def test_registry_down_at_push_then_resume(sandbox_factory) -> None:
    box = sandbox_factory()
    result = when_printed(box, "build.image          log      STEP 1", box.registry.stop)
    try:
        assert result.returncode == 1
        assert "build.push" in result.stderr and "unreachable" in result.stderr
        assert "curl http://" in result.stderr  # says what to check
    finally:
        box.registry.start()
    again = box.run()
    assert again.code == 0, again.stdout[-2000:] + again.stderr
    assert box.builds() == 1


def test_api_answering_500_for_a_few_calls_is_retried(sandbox_factory) -> None:
    box = sandbox_factory()
    box.kube.fail_next = [500, 503, 500]
    result = box.run()
    assert result.code == 0, result.stdout[-2000:] + result.stderr
    assert "retry 1/5" in result.stdout


def test_disk_too_small_is_refused_before_any_format(sandbox_factory) -> None:
    box = sandbox_factory()
    box.write_files(**{"storage.min_free_margin_gib": 50.0})
    result = box.run()
    assert result.code == 3, result.stdout[-2000:] + result.stderr
    assert "too small" in result.stderr and "storage.device" in result.stderr
    assert box.mkfs_calls() == 0 and box.bytes_served() == 0
