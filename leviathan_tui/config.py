"""Settings: one typed, validated model. Defaults are the deployment plan's values.

Every field carries a description; `leviathan render` and the README's configuration reference
are built from the same model, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from leviathan_tui.errors import UsageError


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1..65535")
    return value


def _node_port(value: int) -> int:
    if not 30000 <= value <= 32767:
        raise ValueError("must be in the NodePort range 30000..32767")
    return value


def _dns_label(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ValueError("must be a DNS label: lower-case letters, digits and '-', at most 63")
    return value


def _dns_subdomain(value: str) -> str:
    """A Kubernetes object name such as a node's: RFC 1123 labels joined by dots, at most 253."""
    label = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    if len(value) > 253 or not re.fullmatch(rf"{label}(\.{label})*", value):
        raise ValueError(
            "must be a DNS subdomain, as Kubernetes names nodes: lower-case letters, digits, "
            "'-' and '.', at most 253"
        )
    return value


def _abs_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


_IMAGE_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_REGISTRY_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
_TAG = r"[\w][\w.-]{0,127}"
_IMAGE_REF = re.compile(
    rf"(?:{_REGISTRY_HOST}/)?{_IMAGE_NAME}(?::{_TAG})?(?:@sha256:[a-f0-9]{{64}})?"
)


def _image_ref(value: str) -> str:
    """An image reference as docker and the kubelet parse it: [registry/]name[:tag][@digest]; the
    first component is a registry only when it has a dot or a port, or is localhost."""
    first, slash, _ = value.partition("/")
    has_registry = slash and ("." in first or ":" in first or first == "localhost")
    if not _IMAGE_REF.fullmatch(value) or (slash and not has_registry and first != first.lower()):
        raise ValueError(
            f"{value!r} is not an image reference ([registry[:port]/]name[:tag], lower-case name)"
        )
    return value


def _registry_address(value: str) -> str:
    if not re.fullmatch(_REGISTRY_HOST, value) or "/" in value:
        raise ValueError(f"{value!r} is not host[:port]")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


Port = Annotated[int, AfterValidator(_port)]
NodePort = Annotated[int, AfterValidator(_node_port)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
Name = Annotated[str, AfterValidator(_not_blank)]
ImageRef = Annotated[str, AfterValidator(_image_ref)]
RegistryAddress = Annotated[str, AfterValidator(_registry_address)]


class Section(BaseModel):
    # strict: YAML gives real types, so no quiet coercion (`true` is not a port, "5" not a count);
    # every number finite
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


class ClusterConfig(Section):
    kubeconfig: str | None = Field(
        None, description="kubeconfig file; default: $KUBECONFIG or ~/.kube/config, like kubectl"
    )
    context: str | None = Field(
        None, description="kubeconfig context; default: the current context"
    )
    namespace: DnsLabel = Field(
        "ai-workloads", description="namespace for the pods, the Deployment and the Service"
    )
    node_name: DnsSubdomain = Field("talos-node-0", description="the Talos GPU node")
    pod_timeout_s: float = Field(
        300.0,
        gt=0,
        description="how long a helper pod may stay Pending before Leviathan explains why",
    )
    api_retries: int = Field(
        5, ge=0, le=20, description="retries for transient API errors (connection reset, 5xx, 429)"
    )


class StorageConfig(Section):
    host_mount: AbsPath = Field(
        "/var/mnt/data", description="where the data disk is mounted on the node"
    )
    pod_mount: AbsPath = Field("/data", description="where the privileged pod sees the host mount")
    label: str = Field(
        "leviathan",
        max_length=12,
        description="XFS label that marks a disk formatted by Leviathan (mkfs.xfs allows 12 chars)",
    )
    agent_image: ImageRef = Field(
        "python:3.11-slim-bookworm",
        description="image of the helper pods; needs Python 3, util-linux and xfsprogs (installed at start when missing)",
    )
    agent_mount: AbsPath = Field(
        "/opt/leviathan", description="where the agent code (ConfigMap) is mounted in helper pods"
    )
    min_free_margin_gib: float = Field(
        10.0, ge=0, description="free space to keep on the disk after the download"
    )


class ModelConfig(Section):
    endpoint: str | None = Field(
        None, description="Hugging Face endpoint (HF_ENDPOINT); default: the public Hub"
    )
    repo: Name = Field(
        "unsloth/DeepSeek-V3-GGUF", description="Hugging Face repo of the GGUF quants"
    )
    quant: Name = Field(
        "Q4_K_M", description="quant folder to fetch (e.g. Q4_K_M, Q2_K_XS, Q5_K_M)"
    )
    revision: str = Field("main", description="revision of the GGUF repo")
    config_repo: Name = Field(
        "deepseek-ai/DeepSeek-V3",
        description="repo of the original model's config and tokenizer files",
    )
    config_revision: str = Field("main", description="revision of the config repo")
    config_files: list[str] = Field(
        default_factory=lambda: [
            "config.json",
            "configuration_deepseek.py",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ],
        description="files KTransformers needs in --model_path (no *.safetensors)",
    )
    model_dir: AbsPath = Field(
        "/data/models/deepseek-v3-gguf",
        description="model directory as the pod sees it; GGUF files go to <dir>/<quant>/, config files to <dir>/config/",
    )
    transfer: Literal["http", "xet"] = Field(
        "http",
        description="http: resumable Range download (survives pod restarts); xet: hf_xet fast mode, then a full verification pass",
    )
    parallel: int = Field(3, ge=1, le=16, description="shards downloaded at once")
    retry_for_s: float = Field(
        1800.0,
        gt=0,
        description="keep retrying a network outage this long before the download fails",
    )
    hf_token_secret: str | None = Field(
        None,
        description="Kubernetes Secret holding HF_TOKEN (key 'token'); the token is never stored by Leviathan",
    )

    @model_validator(mode="after")
    def _dir_name(self) -> ModelConfig:
        if self.model_dir.rstrip("/").endswith(".gguf"):
            raise ValueError("model_dir must not end in .gguf (KTransformers treats it as a file)")
        return self


class DownloadConfig(Section):
    max_bytes_per_s: int = Field(
        0,
        ge=0,
        description="cap on the download's bandwidth across all connections, bytes/s; 0: no cap",
    )
    expected_bytes_per_s: int = Field(
        200_000_000,
        gt=0,
        description="bandwidth the plan's ETA assumes until a download has been measured, bytes/s",
    )
    connections_per_file: int = Field(
        0,
        ge=0,
        le=32,
        description="Range connections per file; 0: decided from the first seconds' measurements",
    )
    max_connections: int = Field(
        16, ge=1, le=128, description="connections open at once across all files"
    )


class SshConfig(Section):
    host: Name = Field(
        "192.168.3.10", description="the Proxmox build host (a ~/.ssh/config alias works)"
    )
    port: Port | None = Field(None, description="SSH port; default from ~/.ssh/config, else 22")
    user: str | None = Field(None, description="SSH user; default from ~/.ssh/config, else root")
    identity_file: str | None = Field(
        None, description="private key; default: the SSH agent and ~/.ssh/config IdentityFile"
    )
    known_hosts: str = Field(
        "~/.ssh/known_hosts",
        description="host keys are verified against this file; accepted keys are added",
    )
    ssh_config: str = Field("~/.ssh/config", description="OpenSSH client config to honour")
    connect_timeout_s: float = Field(15.0, gt=0, description="TCP + handshake timeout")


class RegistryConfig(Section):
    address: RegistryAddress = Field(
        "192.168.3.10:5000",
        description="registry host:port (image references are prefixed with it)",
    )
    scheme: Literal["http", "https"] = Field(
        "http", description="how the registry's API is reached"
    )


class BuildConfig(Section):
    image: ImageRef = Field(
        "omni/engine:leviathan-blackwell", description="repository:tag pushed to the registry"
    )
    base_image: ImageRef = Field(
        "192.168.3.10:5000/omni/engine:bleeding-edge-v2",
        description="FROM of the engine Dockerfile",
    )
    ktransformers_ref: str = Field(
        "v0.4.1",
        description="KTransformers git ref; v0.4.1 is the last tag with ktransformers.server.main",
    )
    torch_cuda_arch_list: str = Field(
        "auto",
        description="TORCH_CUDA_ARCH_LIST; auto: the node's GPUs (GPU Feature Discovery labels), asked when unknown",
    )
    enable_deepgemm: int = Field(
        1,
        ge=0,
        le=1,
        description="ENABLE_DEEPGEMM (kept from the plan; KTransformers v0.4.1 does not read it)",
    )
    cpu_instruct: Literal["auto", "FANCY", "AVX512", "AVX2"] = Field(
        "auto",
        description="CPU_INSTRUCT; auto: the best preset the node's CPU runs (NATIVE would target the build host)",
    )
    builder: Literal["docker", "podman", "buildah"] = Field(
        "docker", description="builder command on the build host"
    )
    builder_global_flags: list[str] = Field(
        default_factory=list,
        description="flags placed after the builder command (e.g. --storage-driver vfs)",
    )
    build_flags: list[str] = Field(
        default_factory=list,
        description="extra flags for the build command (e.g. --isolation chroot)",
    )
    dockerfile: str | None = Field(
        None, description="your own Dockerfile; default: the shipped Dockerfile.leviathan"
    )
    context_files: list[str] = Field(
        default_factory=list, description="extra local files uploaded beside the Dockerfile"
    )
    build_args: dict[str, str] = Field(default_factory=dict, description="extra --build-arg values")
    remote_dir: str = Field(
        "leviathan-build",
        description="build directory on the host (relative to the SSH user's home)",
    )
    timeout_s: float = Field(
        4 * 3600.0,
        gt=0,
        description="give up waiting for the build after this long (the build itself goes on)",
    )

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0] if ":" in self.image.split("/")[-1] else self.image

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[1] if ":" in self.image.split("/")[-1] else "latest"


class DeployConfig(Section):
    engine: Literal["ktransformers", "llamacpp", "vllm"] = Field(
        "ktransformers",
        description="inference engine; llamacpp is the fallback when the KTransformers build fails",
    )
    name: DnsLabel = Field("leviathan-engine", description="name of the Deployment and Service")
    service_port: Port = Field(30000, description="port the server listens on in the pod")
    node_port: NodePort = Field(30000, description="NodePort of the Service")
    health_url: str | None = Field(
        None,
        description="base URL for the health check; default: http://<node InternalIP>:<node_port>",
    )
    health_timeout_s: float = Field(3600.0, gt=0, description="how long the model may take to load")
    completion_timeout_s: float = Field(
        300.0,
        gt=0,
        description="how long the health check's one chat completion may take once the server answers",
    )
    bench_timeout_s: float = Field(
        600.0,
        ge=0,
        description="time the serving benchmark after the health check may take; 0 skips it",
    )
    gpus: int = Field(1, ge=1, description="nvidia.com/gpu limit")
    gpu_memory_gib: float | None = Field(
        None,
        gt=0,
        description="memory of one GPU; default: the node's nvidia.com/gpu.memory label (GPU Feature Discovery), else 96",
    )
    cpu_infer: int | None = Field(
        None, ge=1, description="--cpu_infer; default: the node's allocatable CPUs minus 2"
    )
    max_new_tokens: int = Field(
        1024,
        ge=1,
        description="reply length when a request sets none: KTransformers' --max_new_tokens, llama.cpp's --n-predict",
    )
    max_batch_size: int = Field(4, ge=1)
    cache_lens: int = Field(
        8192,
        ge=1,
        description=(
            "tokens of context one request may hold: KTransformers' --cache_lens, vLLM's "
            "--max-model-len, each llama.cpp slot (--ctx-size = max_batch_size x cache_lens); "
            "must exceed max_batch_size x max_new_tokens"
        ),
    )
    chunk_size: int = Field(256, ge=1)
    model_name: Name = Field(
        "DeepSeek-V3", description="--model_name, also the model id in API requests"
    )
    backend_type: str = Field("balance_serve", description="--backend_type")
    optimize_config_path: str = Field(
        "ktransformers/optimize/optimize_rules/DeepSeek-V3-Chat-serve.yaml",
        description="--optimize_config_path (relative to the KTransformers checkout in the image)",
    )
    shm_size_gib: int = Field(64, ge=1, description="memory-backed /dev/shm size")
    memory_overhead_gib: float = Field(16.0, ge=0, description="added to the estimated RAM need")
    llamacpp_image: ImageRef = Field(
        # pinned: the flags rendered are build 11434's (--load-mode; older builds spell it --no-mmap)
        "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434",
        description="image of the llama.cpp fallback (its flags are those of llama.cpp build 11434)",
    )
    vllm_image: ImageRef = Field(
        # v0.24.0 moved GGUF out of vLLM into vllm-gguf-plugin, which no vLLM image ships
        "vllm/vllm-openai:v0.23.0",
        description="image of the vLLM fallback; its in-tree GGUF loader reads one merged file",
    )
    gguf_merge_image: ImageRef = Field(
        "ghcr.io/ggml-org/llama.cpp:full-b11434",
        description="image with python3 and llama-gguf-split that merges the shards into one file for vLLM",
    )

    @model_validator(mode="after")
    def _cache(self) -> DeployConfig:
        if self.cache_lens <= self.max_batch_size * self.max_new_tokens:
            raise ValueError(
                f"cache_lens ({self.cache_lens}) must be greater than max_batch_size x max_new_tokens "
                f"({self.max_batch_size} x {self.max_new_tokens} = {self.max_batch_size * self.max_new_tokens})"
            )
        return self


class Config(Section):
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    ssh: SshConfig = Field(default_factory=SshConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    @property
    def image_ref(self) -> str:
        return f"{self.registry.address}/{self.build.image}"

    @property
    def gguf_dir(self) -> str:
        return f"{self.model.model_dir.rstrip('/')}/{self.model.quant}"

    @property
    def config_dir(self) -> str:
        return f"{self.model.model_dir.rstrip('/')}/config"

    def host_path(self, pod_path: str) -> str:
        """Translate a path seen in the privileged pod into the node's path."""
        mount = self.storage.pod_mount.rstrip("/")
        if pod_path == mount or pod_path.startswith(mount + "/"):
            return self.storage.host_mount.rstrip("/") + pod_path[len(mount) :]
        return pod_path


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at `loc` accepts (the top level's are the section names)."""
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
        if not issubclass(model, BaseModel):
            return []
    return list(model.model_fields)


def format_validation_error(err: ValidationError, source: str) -> str:
    import difflib

    lines = [f"{source}: invalid configuration"]
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            known = _keys_at(tuple(item["loc"][:-1]))
            close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
            msg = "unknown key" + (f"; did you mean {close[0]}?" if close else "")
        elif item["type"] in ("model_type", "dict_type"):
            msg = "must be a section: a mapping of keys to values"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def config_from_mapping(data: Any, source: str) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{source}: the configuration must be a mapping of sections, got {type(data).__name__}"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise UsageError(format_validation_error(err, source)) from None


def load_config(
    path: Path | None, base: dict[str, Any] | None = None, base_source: str = "config"
) -> Config:
    """Config from defaults, then `base` (e.g. a replay file's config), then the file. Errors
    name the file a bad value came from."""
    from leviathan_tui.bounded_input import load_yaml_file

    merged: dict[str, Any] = dict(base or {})
    source = base_source
    if base:
        config_from_mapping(merged, base_source)  # a bad value in the base is blamed on it
    if path is not None:
        data = load_yaml_file(path, "config file")
        if data is not None and not isinstance(data, dict):
            raise UsageError(
                f"{path}: the configuration must be a mapping of sections, got {type(data).__name__}"
            )
        merged = deep_merge(merged, data or {})
        source = str(path)
    return config_from_mapping(merged, source)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def config_reference() -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every field: the README's reference table."""
    rows: list[tuple[str, str, str]] = []
    for section_name, section_field in Config.model_fields.items():
        section_model = section_field.default_factory()  # type: ignore[misc]
        for name, field in type(section_model).model_fields.items():
            rows.append(
                (
                    f"{section_name}.{name}",
                    repr(getattr(section_model, name)),
                    field.description or "",
                )
            )
    return rows
