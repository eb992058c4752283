"""What steps hand each other: small typed records, one owner each.

A step publishes records (`ctx.publish(DataDisk(...))`) and reads others' through a typed
accessor (`ctx.need(DataDisk)`); the runner derives a step's needs from the records it reads.
The state file stores records by type name, so the data disk's identity, the image digest and
the download plan live in exactly one place.

| record      | published by          | read by                                   |
|-------------|-----------------------|-------------------------------------------|
| NodeFacts   | preflight.node        | storage.probe, build.image, deploy.apply  |
| ModelPlan   | preflight.model       | storage.format (fit), download.fetch      |
| NodeDisks   | storage.probe         | storage.format, build.image (CPU flags)   |
| DataDisk    | storage.format        | storage.verify_host, download.fetch, …    |
| MountProof  | storage.verify_host   | download.fetch, deploy.apply              |
| ModelFiles  | download.fetch        | deploy.apply                              |
| BuildJob    | build.image           | build.push                                |
| ImageRef    | build.push            | deploy.apply (KTransformers only)         |
| Rollout     | deploy.apply          | deploy.health                             |
| Health      | deploy.health         | the summary, `leviathan health`           |
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

RECORDS_SCHEMA = 1


@dataclass(frozen=True)
class Record:
    """Base of every record; subclasses are frozen dataclasses of plain values."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


R = TypeVar("R", bound=Record)


# --- the node -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """One GPU model on the node, from NVIDIA GPU Feature Discovery labels."""

    product: str
    count: int
    memory_mib: int | None = None
    compute: str | None = None  # "9.0", "10.0", "12.0"

    @property
    def arch(self) -> str | None:
        return self.compute


@dataclass(frozen=True)
class NodeFacts(Record):
    name: str
    ready: bool
    os_image: str
    kubelet_version: str
    internal_ip: str
    cpu: float
    memory_bytes: int
    gpu_count: int
    gpus: tuple[Gpu, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def talos_version(self) -> tuple[int, int] | None:
        import re

        if "talos" not in self.os_image.lower():
            return None
        match = re.search(r"v?(\d+)\.(\d+)", self.os_image)
        return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class NodeDisks(Record):
    """The probe's listing (lsblk JSON of each device) and the node CPU's instruction set."""

    devices: tuple[dict[str, Any], ...]
    cpu_flags: tuple[str, ...] = ()
    cpu_model: str = ""


@dataclass(frozen=True)
class DataDisk(Record):
    """The chosen data disk. Its identity (path, serial, size, by-id, and the filesystem UUID once
    formatted) is recorded once and enforced on every later run; a re-probe never overwrites it."""

    path: str
    serial: str
    size: int
    model: str = ""
    by_id: tuple[str, ...] = ()
    fs_uuid: str = ""  # empty until Leviathan's XFS is on it
    label: str = ""
    mountpoint: str = ""  # on the node
    free_bytes: int = 0
    fs_bytes: int = 0
    formatted: bool = False  # this session ran mkfs (False: our XFS was found and mounted)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def identity(self) -> str:
        parts = [self.path, f"serial {self.serial or '-'}", f"{self.size} bytes"]
        if self.by_id:
            parts.append(f"by-id {self.by_id[0]}")
        if self.fs_uuid:
            parts.append(f"UUID {self.fs_uuid}")
        return ", ".join(parts)


@dataclass(frozen=True)
class MountProof(Record):
    """An unprivileged pod saw the marker written on the data disk: the node shares the mount."""

    token: str
    serial: str


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: str  # path in its repo
    repo: str
    size: int
    sha256: str | None
    kind: Literal["gguf", "config"]


@dataclass(frozen=True)
class ModelPlan(Record):
    """What the Hub says the chosen quant and the engine's config files are."""

    repo: str
    revision: str
    quant: str
    config_repo: str
    config_revision: str
    folder: str
    files: tuple[ModelFile, ...]
    quants: tuple[tuple[str, int], ...] = ()
    source: str = "the Hub"
    exact: bool = True

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def gguf(self) -> tuple[ModelFile, ...]:
        return tuple(f for f in self.files if f.kind == "gguf")

    @property
    def gguf_total(self) -> int:
        return sum(f.size for f in self.gguf)

    @property
    def first_shard(self) -> str:
        names = sorted(f.name for f in self.gguf)
        return names[0] if names else ""

    def same_source(self, other: tuple[str, str, str, str, str]) -> bool:
        return (
            self.repo,
            self.revision,
            self.quant,
            self.config_repo,
            self.config_revision,
        ) == other


@dataclass(frozen=True)
class ModelFiles(Record):
    """Every planned file is on the data disk with the Hub's sha256."""

    folder: str
    files: int
    total: int
    verified: bool


# --- the image ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildJob(Record):
    build_id: str
    remote_dir: str
    log_lines: int = 0
    build_args: tuple[tuple[str, str], ...] = ()  # chosen for the node: arch list, CPU, distro


@dataclass(frozen=True)
class ImageRef(Record):
    reference: str  # registry/repository:tag
    digest: str
    media_type: str
    build_id: str

    @property
    def pinned(self) -> str:
        repository = self.reference.rsplit(":", 1)[0] if "@" not in self.reference else ""
        return f"{repository or self.reference}@{self.digest}"


# --- the service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout(Record):
    engine: str
    image: str
    args: tuple[str, ...]
    pod: str
    ram_bytes: int | None = None
    vram_bytes: int | None = None


@dataclass(frozen=True)
class Health(Record):
    base_url: str
    model: str
    reply: str
    ttft_s: float
    checked_at: str
    liveness_path: str = ""
    bench: tuple[tuple[str, str], ...] = field(default=())


RECORD_TYPES: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        NodeFacts,
        NodeDisks,
        DataDisk,
        MountProof,
        ModelPlan,
        ModelFiles,
        BuildJob,
        ImageRef,
        Rollout,
        Health,
    )
}


def register(cls: type[R]) -> type[R]:
    """Make a record type known to the state file (the built-in ones are registered above)."""
    RECORD_TYPES[cls.__name__] = cls
    return cls


@functools.cache
def _adapter(cls: type[Record]) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


def record_from_json(type_name: str, data: Any) -> Record:
    """A record from its saved form; ValueError names what does not fit."""
    cls = RECORD_TYPES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown record type {type_name!r}")
    from pydantic import ValidationError

    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise ValueError(f"record {type_name}: {where}: {first['msg']}") from None
