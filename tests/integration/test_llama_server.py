"""The real llama-server (llama.cpp b11434, CPU build) serving a DeepSeek-V3-shaped Q4_K_M model
split into three Hub-named shards, started with exactly the container command and arguments
Leviathan renders for `deploy.engine: llamacpp` (only the mount paths, host and port mapped),
then checked by Leviathan's own health check and `leviathan health`."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml

from leviathan_tui.backends.http import HttpBackend
from leviathan_tui.config import Config
from leviathan_tui.estimate import read_local_header
from leviathan_tui.health import check_health
from leviathan_tui.inference import engine_spec
from tests.conftest import leviathan_cmd, run_env
from tests.support.deepseek_gguf import SHARDS, ShardedModel, quantized_types
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

LOAD_TIMEOUT_S = 300.0


def test_shards_are_real_q4_k_m_named_like_the_hub(deepseek_v3_shards: ShardedModel) -> None:
    names = [p.name for p in deepseek_v3_shards.shards]
    assert names == [f"DeepSeek-V3-Q4_K_M-{i:05d}-of-{SHARDS:05d}.gguf" for i in (1, 2, 3)]
    assert deepseek_v3_shards.folder.name == "DeepSeek-V3-Q4_K_M"
    assert {"Q4_K", "Q6_K"} <= quantized_types(deepseek_v3_shards.shards)
    total = sum(p.stat().st_size for p in deepseek_v3_shards.shards)
    assert 5e6 < total < 50e6


def test_rendered_llama_server_loads_the_shards_and_passes_health(
    rendered_llama_server: tuple[Config, LlamaServer],
    deepseek_v3_shards: ShardedModel,
    tmp_path: Path,
) -> None:
    config, server = rendered_llama_server
    assert "--cpu-moe" in server.argv and server.argv[server.argv.index("-m") + 1].endswith(
        "DeepSeek-V3-Q4_K_M-00001-of-00003.gguf"
    )
    spec = engine_spec(config)
    attempts: list[str] = []
    result = check_health(
        HttpBackend(),
        server.url,
        paths=spec.health_paths,
        timeout_s=LOAD_TIMEOUT_S,
        model_name=config.deploy.model_name,
        on_attempt=attempts.append,
        cancelled=threading.Event(),
        poll_s=0.5,
    )
    assert result.liveness_path == "/health"
    assert attempts[-1] == "/health answers; sending one chat completion to model DeepSeek-V3"
    assert result.model == config.deploy.model_name  # --alias is what /v1/models reports
    assert result.reply.strip()
    assert 0 < result.ttft_s <= result.total_s

    with urllib.request.urlopen(server.url + "/v1/models", timeout=10) as response:
        models = json.load(response)
    assert [m["id"] for m in models["data"]] == [config.deploy.model_name]
    meta = models["data"][0]["meta"]
    # every tensor of all three shards is in the loaded model, not just the first shard's
    shard_tensor_bytes = sum(
        t.nbytes for p in deepseek_v3_shards.shards for t in read_local_header(str(p)).tensors
    )
    assert meta["size"] == shard_tensor_bytes
    assert meta["ftype"] == "Q4_K - Medium" and meta["n_embd"] == 512
    # each of the --parallel slots holds cache_lens tokens (--ctx-size = slots x cache_lens)
    assert meta["n_ctx"] == config.deploy.cache_lens
    slots = config.deploy.max_batch_size
    log = server.log()
    assert (
        f"initializing, n_slots = {slots}, n_ctx_slot = {config.deploy.cache_lens}, "
        "kv_unified = 'false'" in log
    )
    # --load-mode none is what llama-server asks for with --cpu-moe: its warning is gone
    assert "--load-mode" in server.argv and "consider using" not in log

    config_file = tmp_path / "leviathan.yaml"
    config_file.write_text(yaml.safe_dump({"deploy": {"engine": "llamacpp"}}))
    cli = subprocess.run(
        leviathan_cmd()
        + [
            "--config",
            str(config_file),
            "--state-dir",
            str(tmp_path / "state"),
            "health",
            "--url",
            server.url,
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=300,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.startswith(f"HEALTHY {server.url} (/health); model DeepSeek-V3")


def test_n_predict_is_the_reply_length_when_a_request_sets_none(
    llama_cpp_bin: Path, deepseek_v3_shards: ShardedModel, tmp_path: Path
) -> None:
    """llama.cpp b11434 `tools/server/server-context.cpp`: a slot's limit is the request's
    n_predict/max_tokens when it sets one, else the server's --n-predict."""
    config = Config.model_validate({"deploy": {"engine": "llamacpp", "max_new_tokens": 24}})
    port = free_port()
    rendered = rendered_container(config, deepseek_v3_shards.first_shard.name, cpu_infer=2)
    argv = localize(rendered, llama_cpp_bin, deepseek_v3_shards.folder, port)
    server = start_llama_server(argv, port, tmp_path / "llama-server.log")
    try:
        server.wait_healthy(LOAD_TIMEOUT_S)

        def tokens(extra: dict[str, object]) -> tuple[int, str]:
            body = {"messages": [{"role": "user", "content": "hello"}], "temperature": 0, **extra}
            request = urllib.request.Request(
                server.url + "/v1/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                reply = json.load(response)
            return reply["usage"]["completion_tokens"], reply["choices"][0]["finish_reason"]

        assert tokens({}) == (24, "length")
        assert tokens({"max_tokens": 30}) == (30, "length")  # the request's own limit wins
    finally:
        server.stop()


def test_without_load_mode_none_llama_server_asks_for_it(
    llama_cpp_bin: Path, deepseek_v3_shards: ShardedModel, tmp_path: Path
) -> None:
    """Why --load-mode none is rendered: with --cpu-moe and the default mmap, this build warns
    (`src/llama-model-loader.cpp`) and names the flag; if an upgrade renames it, this fails."""
    config = llamacpp_config()
    port = free_port()
    rendered = rendered_container(config, deepseek_v3_shards.first_shard.name, cpu_infer=2)
    at = rendered.index("--load-mode")
    without = rendered[:at] + rendered[at + 2 :]
    argv = localize(without, llama_cpp_bin, deepseek_v3_shards.folder, port)
    server = start_llama_server(argv, port, tmp_path / "llama-server.log")
    try:
        server.wait_healthy(LOAD_TIMEOUT_S)
    finally:
        server.stop()
    assert (
        "tensor overrides to CPU are used with mmap enabled - consider using --load-mode none"
        in server.log()
    )
