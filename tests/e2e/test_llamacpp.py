"""`deploy.engine: llamacpp` end to end against the real llama-server.

The Hub stand-in serves the real DeepSeek-V3-shaped Q4_K_M shards, the fetch agent downloads
them onto the sandbox's loop disk, and the API stand-in runs the Deployment's pod as the cached
llama.cpp build with exactly the rendered command and arguments. The build phase is never run:
llama.cpp deploys its upstream image. Then the engine process is killed; the stand-in restarts it
as the kubelet would, and the next run's health step proves the restarted server.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import leviathan_cmd
from tests.e2e.conftest import pytestmark as sandbox_requirements
from tests.e2e.sandbox import Sandbox
from tests.support.deepseek_gguf import ShardedModel
from tests.support.llama_cpp import (  # noqa: F401  (fixtures)
    BUILD_TIMEOUT_S,
    deepseek_v3_shards,
    llama_cpp_bin,
)
from tests.support.validate import OLDEST, newest, validate

pytestmark = [sandbox_requirements, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 900)]

NO_BUILD = ("--only", "preflight,storage,download,deploy")


def mapped_only(rendered: list[str], argv: list[str], box: Sandbox, gguf_host: str) -> list[str]:
    """The differences between the rendered command and the process, each one a mapping."""
    assert len(rendered) == len(argv), (rendered, argv)
    odd = []
    for want, have in zip(rendered, argv, strict=True):
        if want == have:
            continue
        if want == "/app/llama-server" and have == str(box.llama_bin / "llama-server"):
            continue
        if want.startswith("/models/gguf/") and have == gguf_host + want[len("/models/gguf") :]:
            continue
        if want == "0.0.0.0" and have == "127.0.0.1":
            continue
        odd.append(f"{want} -> {have}")
    return odd


def test_llamacpp_with_the_real_server_then_a_resume_after_the_engine_dies(
    sandbox_factory,
    llama_cpp_bin: Path,  # noqa: F811 (a fixture)
    deepseek_v3_shards: ShardedModel,  # noqa: F811 (a fixture)
) -> None:
    box: Sandbox = sandbox_factory(
        engine_name="llamacpp", llama_bin=llama_cpp_bin, model=deepseek_v3_shards
    )
    started = time.monotonic()
    first = box.run(*NO_BUILD)
    first_s = time.monotonic() - started
    assert first.code == 0, first.stdout[-4000:] + first.stderr
    state = box.state()
    steps = {k: v["status"] for k, v in state["steps"].items()}
    assert steps["deploy.apply"] == "done" and steps["deploy.health"] == "done", steps
    assert not any(k.startswith("build.") for k in steps)  # no image was built
    assert "ImageRef" not in state["records"]

    # the shards llama-server loaded are the Hub's, fetched onto the loop disk
    gguf_host = str(box.data / "models" / "deepseek-v3-gguf" / "Q4_K_M")
    for shard in deepseek_v3_shards.shards:
        on_disk = Path(gguf_host) / shard.name
        assert (
            hashlib.sha256(on_disk.read_bytes()).digest()
            == hashlib.sha256(shard.read_bytes()).digest()
        )

    # the pod runs exactly the rendered container: only binary, mount paths and address mapped
    dep = box.kube.deployments[("ai-workloads", "leviathan-engine")]
    for version in (OLDEST, newest()):
        validate(dep, version)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
    pod = box.engine_pod()
    argv = list(pod.process.args)
    rendered = [*container["command"], *container["args"]]
    assert mapped_only(rendered, argv, box, gguf_host) == []
    assert argv[argv.index("--port") + 1] == str(box.node_port)
    home = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "engine-home")
    assert home["hostPath"]["path"].startswith(str(box.data / "engine-home" / "llamacpp-"))
    assert Path(home["hostPath"]["path"]).is_dir()

    # llama-server's own account of what it was asked to do
    log = pod.log_path.read_text(errors="replace")
    assert "initializing, n_slots = 4, n_ctx_slot = 8192, kv_unified = 'false'" in log
    assert "consider using --load-mode none" not in log

    # health: a streamed completion, then the benchmark, from llama.cpp's own timings
    health = state["records"]["Health"]["data"]
    assert health["reply"].strip() and health["liveness_path"] == "/health"
    assert health["base_url"] == f"http://127.0.0.1:{box.node_port}"
    bench = dict(map(tuple, health["bench"]))
    assert bench["rates from"] == "llama.cpp timings", bench
    for streams in ("1 stream", "4 streams"):
        for figure in ("prefill", "decode per stream"):
            value = bench[f"{streams}: {figure}"]
            assert value != "- tok/s" and float(value.split()[0]) > 0, (streams, figure, value)
    assert "serving benchmark: " in first.stdout

    cli = subprocess.run(
        leviathan_cmd()
        + ["--config", str(box.config_path), "--state-dir", str(box.state_dir), "health"]
        + ["--timeout", "120"],
        capture_output=True,
        text=True,
        env=box.env(),
        timeout=300,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.startswith(f"HEALTHY http://127.0.0.1:{box.node_port} (/health)")

    # the engine dies; the pod's container restarts after the kubelet's back-off
    pid = pod.process.pid
    box.kube.kill_pod_process("ai-workloads", pod.manifest["metadata"]["name"])
    started = time.monotonic()
    second = box.run(*NO_BUILD)
    resume_s = time.monotonic() - started
    assert second.code == 0, second.stdout[-4000:] + second.stderr
    assert f"{'deploy.apply':<20} skipped" in second.stdout
    assert f"{'deploy.health':<20} done" in second.stdout  # proven again, not assumed
    assert box.engine_pod() is pod and pod.restarts == 1 and pod.process.pid != pid
    assert "initializing, n_slots = 4" in pod.previous_log
    after = json.loads((box.state_dir / "state.json").read_text())["records"]["Health"]["data"]
    assert after["checked_at"] >= health["checked_at"] and after["reply"].strip()
    print(
        f"\nllama.cpp e2e: first run {first_s:.1f} s (no build), resume after the engine died "
        f"{resume_s:.1f} s\n" + "\n".join(f"  {k}: {v}" for k, v in bench.items())
    )
