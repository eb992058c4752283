"""The memory estimate against llama.cpp's own accounting for the same shards.

llama-server runs with the rendered `deploy.engine: llamacpp` arguments (`--cpu-moe -ngl 999`)
plus `-lv 4` (to log the buffers) and `--rpc` to a ggml-rpc-server on 127.0.0.1: that second device stands in for the node's GPU,
so llama.cpp splits the weights as on the node: non-expert layers on the device (`RPC0[...]`
model buffer, where `CUDA0` would be), experts and the token embeddings in host buffers
(`CPU_Mapped`, `CPU_REPACK`, `CPU`), the KV cache on the device. Its `load_tensors: ... model
buffer size` and `llama_kv_cache: ... KV buffer size` lines (llama.cpp b11434
`src/llama-model.cpp`, `src/llama-kv-cache.cpp`) are compared with the estimator's figures.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leviathan_tui.estimate import MemoryEstimate, estimate, read_local_header
from leviathan_tui.inference import engine_spec
from tests.support.deepseek_gguf import ShardedModel
from tests.support.llama_cpp import (
    BUILD_TIMEOUT_S,
    LlamaServer,
    free_port,
    llamacpp_config,
    localize,
    rendered_container,
    start_llama_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 900)]

MIB = 2**20
TOLERANCE = 0.10
MODEL_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")
KV_BUFFER = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB")


def buffers(pattern: re.Pattern[str], log: str) -> dict[str, float]:
    """Bytes per buffer name, summed (a mapped split model has one host buffer per shard)."""
    out: dict[str, float] = {}
    for name, mib in pattern.findall(log):
        out[name] = out.get(name, 0.0) + float(mib) * MIB
    return out


@pytest.fixture
def rpc_device(llama_cpp_bin: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = open(tmp_path / "rpc-server.log", "wb")
    process = subprocess.Popen(
        [str(llama_cpp_bin / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "rpc-server.log").read_text(errors="replace"))
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture
def server_beside_a_device(
    llama_cpp_bin: Path, deepseek_v3_shards: ShardedModel, rpc_device: str, tmp_path: Path
) -> Iterator[LlamaServer]:
    config = llamacpp_config()
    port = free_port()
    rendered = rendered_container(
        config, deepseek_v3_shards.first_shard.name, cpu_infer=os.cpu_count() or 1
    )
    argv = localize(rendered, llama_cpp_bin, deepseek_v3_shards.folder, port)
    # -lv 4: the buffer sizes are logged at llama.cpp's "trace" verbosity, one above the default
    extra = ["--rpc", rpc_device, "-lv", "4"]
    server = start_llama_server([*argv, *extra], port, tmp_path / "llama-server.log")
    try:
        yield server
    finally:
        server.stop()


def within(estimated: float, reported: float) -> bool:
    return abs(estimated - reported) <= TOLERANCE * reported


def test_estimate_matches_llama_cpp_buffers_with_cpu_moe(
    server_beside_a_device: LlamaServer, deepseek_v3_shards: ShardedModel
) -> None:
    server = server_beside_a_device
    server.wait_healthy(300)
    log = server.log()
    model = buffers(MODEL_BUFFER, log)
    kv = buffers(KV_BUFFER, log)
    device = [name for name in model if name.startswith("RPC")]
    assert len(device) == 1, f"no device model buffer in the log: {model}"
    host = {name: size for name, size in model.items() if name.startswith("CPU")}
    assert host and set(model) == {*device, *host}, model

    spec = engine_spec(llamacpp_config())
    headers = [read_local_header(str(p)) for p in deepseek_v3_shards.shards]
    est: MemoryEstimate = estimate(
        headers,
        cache_lens=spec.kv_tokens,  # the rendered --ctx-size: every slot's context
        experts_in_ram=True,
        overhead_bytes=0,
    )
    reported = {
        "experts (host)": sum(host.values()),
        "non-experts (device)": model[device[0]],
        "weights total": sum(model.values()),
        "KV cache": sum(kv.values()),
    }
    estimated = {
        "experts (host)": est.expert_bytes,
        "non-experts (device)": est.dense_bytes,
        "weights total": est.expert_bytes + est.dense_bytes,
        "KV cache": est.kv_cache_bytes,
    }
    table = "\n".join(
        f"  {k:22} estimator {estimated[k] / MIB:9.2f} MiB   llama-server {reported[k] / MIB:9.2f} MiB"
        f"   ({(estimated[k] - reported[k]) / reported[k]:+.1%})"
        for k in reported
    )
    print(
        f"\nmemory estimate vs llama-server ({', '.join(sorted(model))}; KV {sorted(kv)}):\n{table}"
    )
    assert all(v > 0 for v in reported.values()), table
    off = [k for k in reported if not within(estimated[k], reported[k])]
    assert not off, f"estimate off by more than {TOLERANCE:.0%} for {off}:\n{table}"
    assert next(iter(kv)).startswith("RPC"), "the KV cache belongs on the device (VRAM)"
