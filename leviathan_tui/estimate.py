"""Memory estimate from a GGUF's tensor table — headers only, never the weights.

The header is parsed from its first bytes (a local file or a Range request to the Hub), so a
404 GB model is sized by reading a few MiB. Expert tensors (`*_exps`) go to system RAM for
KTransformers and llama.cpp --cpu-moe; the rest plus the KV cache go to VRAM.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

GGUF_MAGIC = b"GGUF"
KV_BYTES_PER_TOKEN_DEEPSEEK = 2 * 576 * 61  # KTransformers: cache_lens x 2 x 576 x 61 bytes


class NeedMore(Exception):
    """The header continues past the bytes read so far."""


class NotGguf(ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int

    @property
    def nbytes(self) -> int:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(self.ggml_type)]
        elements = 1
        for dim in self.shape:
            elements *= dim
        return elements // block * type_size

    @property
    def is_expert(self) -> bool:
        return "_exps" in self.name


@dataclass
class GgufHeader:
    version: int
    metadata: dict[str, object]
    tensors: list[TensorInfo]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NeedMore()
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int | float:
        size = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self.take(size))[0]

    def string(self) -> str:
        length = int(self.unpack("Q"))
        if length > 1 << 24:
            raise NotGguf(f"implausible string length {length}")
        return self.take(length).decode("utf-8", errors="replace")


_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}


def _value(r: _Reader, vtype: int) -> object:
    if vtype in _SCALARS:
        return r.unpack(_SCALARS[vtype])
    if vtype == 8:
        return r.string()
    if vtype == 9:
        item_type = int(r.unpack("I"))
        count = int(r.unpack("Q"))
        if item_type in _SCALARS:
            size = struct.calcsize(_SCALARS[item_type])
            r.take(size * count)  # arrays (token scores...) are skipped, not kept
            return f"<array of {count}>"
        for _ in range(count):
            _value(r, item_type)
        return f"<array of {count}>"
    raise NotGguf(f"unknown metadata value type {vtype}")


def parse_header(data: bytes) -> GgufHeader:
    r = _Reader(data)
    if r.take(4) != GGUF_MAGIC:
        raise NotGguf("no GGUF magic")
    version = int(r.unpack("I"))
    if version not in (2, 3):
        raise NotGguf(f"unsupported GGUF version {version}")
    n_tensors = int(r.unpack("Q"))
    n_kv = int(r.unpack("Q"))
    metadata: dict[str, object] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = _value(r, int(r.unpack("I")))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = int(r.unpack("I"))
        shape = tuple(int(r.unpack("Q")) for _ in range(n_dims))
        ggml_type = int(r.unpack("I"))
        r.unpack("Q")  # offset
        tensors.append(TensorInfo(name, shape, ggml_type))
    return GgufHeader(version, metadata, tensors)


def read_header(
    read_prefix: Callable[[int], bytes], start: int = 1 << 20, limit: int = 256 << 20
) -> GgufHeader:
    """Parse a header from a source that returns the first N bytes, asking for more as needed."""
    size = start
    while True:
        data = read_prefix(size)
        try:
            return parse_header(data)
        except NeedMore:
            if len(data) < size or size >= limit:
                raise NotGguf("file ends inside the GGUF header") from None
            size *= 4


def read_local_header(path: str) -> GgufHeader:
    def prefix(n: int) -> bytes:
        with open(path, "rb") as handle:
            return handle.read(n)

    return read_header(prefix)


@dataclass(frozen=True)
class MemoryEstimate:
    expert_bytes: int
    dense_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    experts_in_ram: bool

    @property
    def ram_bytes(self) -> int:
        return (self.expert_bytes if self.experts_in_ram else 0) + self.overhead_bytes

    @property
    def vram_bytes(self) -> int:
        experts = 0 if self.experts_in_ram else self.expert_bytes
        return experts + self.dense_bytes + self.kv_cache_bytes

    def describe(self) -> str:
        gib = 2**30
        return (
            f"RAM {self.ram_bytes / gib:.0f} GiB (experts {self.expert_bytes / gib:.0f} GiB"
            f"{'' if self.experts_in_ram else ' in VRAM'} + {self.overhead_bytes / gib:.0f} GiB overhead); "
            f"VRAM {self.vram_bytes / gib:.1f} GiB (dense {self.dense_bytes / gib:.1f} GiB + KV cache {self.kv_cache_bytes / gib:.1f} GiB)"
        )


def estimate(
    headers: list[GgufHeader],
    *,
    cache_lens: int,
    experts_in_ram: bool,
    overhead_bytes: int,
    kv_bytes_per_token: int = KV_BYTES_PER_TOKEN_DEEPSEEK,
) -> MemoryEstimate:
    expert = dense = 0
    for header in headers:
        for tensor in header.tensors:
            if tensor.is_expert:
                expert += tensor.nbytes
            else:
                dense += tensor.nbytes
    return MemoryEstimate(
        expert, dense, cache_lens * kv_bytes_per_token, overhead_bytes, experts_in_ram
    )
