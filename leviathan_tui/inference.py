"""Inference engines: each one place that knows its image, command, port and health paths."""

from __future__ import annotations

from dataclasses import dataclass

from leviathan_tui.config import Config

GGUF_MOUNT = "/models/gguf"
CONFIG_MOUNT = "/models/config"
KTRANSFORMERS_SRC = "/opt/ktransformers"


@dataclass(frozen=True)
class EngineSpec:
    name: str
    title: str
    image: str
    command: list[str]
    args: list[str]
    health_paths: tuple[str, ...]  # tried in order; the first that answers 200 proves liveness
    readiness_path: str
    experts_in_ram: bool  # MoE expert tensors live in system RAM
    note: str = ""


def _optimize_path(config: Config) -> str:
    path = config.deploy.optimize_config_path
    return path if path.startswith("/") else f"{KTRANSFORMERS_SRC}/{path}"


def ktransformers(config: Config, image: str, cpu_infer: int, first_shard: str) -> EngineSpec:
    d = config.deploy
    args = [
        "--model_path",
        CONFIG_MOUNT,
        "--gguf_path",
        GGUF_MOUNT,
        "--port",
        str(d.service_port),
        "--host",
        "0.0.0.0",
        "--cpu_infer",
        str(cpu_infer),
        "--optimize_config_path",
        _optimize_path(config),
        "--backend_type",
        d.backend_type,
        "--max_new_tokens",
        str(d.max_new_tokens),
        "--cache_lens",
        str(d.cache_lens),
        "--max_batch_size",
        str(d.max_batch_size),
        "--chunk_size",
        str(d.chunk_size),
        "--model_name",
        d.model_name,
    ]  # never --web: it is type=bool, so "--web False" turns the web UI on
    return EngineSpec(
        "ktransformers",
        "KTransformers (balance_serve)",
        image,
        ["python3", "-m", "ktransformers.server.main"],
        args,
        ("/health", "/v1/models"),  # KTransformers has no /health; /v1/models answers once loaded
        "/v1/models",
        experts_in_ram=True,
    )


def llamacpp(config: Config, image: str, cpu_infer: int, first_shard: str) -> EngineSpec:
    d = config.deploy
    args = [
        "-m",
        f"{GGUF_MOUNT}/{first_shard}",  # split GGUF loads from its first shard
        "--host",
        "0.0.0.0",
        "--port",
        str(d.service_port),
        "--cpu-moe",  # MoE experts stay in system RAM
        "-ngl",
        "999",
        "--threads",
        str(cpu_infer),
        "--ctx-size",
        str(d.cache_lens),
        "--parallel",
        str(d.max_batch_size),
        "--alias",
        d.model_name,
    ]
    return EngineSpec(
        "llamacpp",
        "llama.cpp llama-server (--cpu-moe)",
        d.llamacpp_image,
        ["/app/llama-server"],
        args,
        ("/health",),
        "/health",
        experts_in_ram=True,
        note="the fallback when the KTransformers build fails; loads the split GGUF by its first shard",
    )


def vllm(config: Config, image: str, cpu_infer: int, first_shard: str) -> EngineSpec:
    d = config.deploy
    args = [
        "serve",
        f"{GGUF_MOUNT}/merged.gguf",
        "--tokenizer",
        CONFIG_MOUNT,
        "--hf-config-path",
        CONFIG_MOUNT,
        "--host",
        "0.0.0.0",
        "--port",
        str(d.service_port),
        "--served-model-name",
        d.model_name,
        "--tensor-parallel-size",
        str(d.gpus),
        "--max-model-len",
        str(d.cache_lens),
    ]
    return EngineSpec(
        "vllm",
        "vLLM (single merged GGUF, all weights in GPU memory)",
        d.vllm_image,
        ["vllm"],
        args,
        ("/health",),
        "/health",
        experts_in_ram=False,
        note="needs the shards merged into one GGUF and every weight in GPU memory",
    )


BUILDERS = {"ktransformers": ktransformers, "llamacpp": llamacpp, "vllm": vllm}


def engine_spec(
    config: Config,
    *,
    digest: str | None = None,
    cpu_infer: int | None = None,
    first_shard: str = "",
) -> EngineSpec:
    image = config.image_ref
    if digest:
        image = f"{config.registry.address}/{config.build.repository}@{digest}"
    cpus = cpu_infer or config.deploy.cpu_infer or 32
    shard = first_shard or f"DeepSeek-V3-{config.model.quant}-00001-of-00009.gguf"
    return BUILDERS[config.deploy.engine](config, image, cpus, shard)


def vllm_fits(model_bytes: int, config: Config) -> tuple[bool, str]:
    """vLLM keeps every weight in GPU memory: offer it only when the GPUs can hold the model."""
    gpu_bytes = int(config.deploy.gpus * config.deploy.gpu_memory_gib * 2**30)
    if model_bytes * 1.1 <= gpu_bytes:
        return True, ""
    return False, (
        f"vLLM keeps all weights in GPU memory: the model needs {model_bytes / 2**30:.0f} GiB, "
        f"the node's {config.deploy.gpus} GPU(s) hold {gpu_bytes / 2**30:.0f} GiB"
    )
