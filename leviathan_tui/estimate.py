"""Memory estimate from a GGUF's tensor table — headers only, never the weights.

The header is parsed from its first bytes (a local file or a Range request to the Hub), so a
404 GB model is sized by reading a few MiB. Expert tensors (`*_exps`) go to system RAM for
KTransformers and llama.cpp --cpu-moe; the rest plus the KV cache go to VRAM.

The KV cache is sized from the header's attention geometry. With multi-head latent attention
(DeepSeek-V2/V3: `<arch>.attention.kv_lora_rank` present) each layer caches one row of
kv_lora_rank + rope dimensions per token and no separate V (llama.cpp b11434
`src/llama-kv-cache.cpp`: `has_v = !is_mla`, K rows of key_length x head_count_kv = 576 x 1;
KTransformers sizes it as cache_lens x 2 x 576 x 61 for DeepSeek-V3); otherwise K and V rows
of head_count_kv x key/value length per layer. Elements are f16 (both engines' default).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

GGUF_MAGIC = b"GGUF"
KV_BYTES_PER_ELEMENT = 2  # f16 cache


class NeedMore(Exception):
    """The header continues past the bytes read so far."""


class NotGguf(ValueError):
    pass


class NoAttentionGeometry(ValueError):
    """The header does not say enough about attention to size the KV cache."""


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


def kv_bytes_per_token(
    headers: list[GgufHeader], bytes_per_element: int = KV_BYTES_PER_ELEMENT
) -> int:
    """KV-cache bytes one token takes across all layers, from the attention geometry in the header
    (the first shard of a split model holds the metadata)."""
    meta = next((h.metadata for h in headers if "general.architecture" in h.metadata), None)
    if meta is None:
        raise NoAttentionGeometry("no shard carries general.architecture")
    arch = meta["general.architecture"]

    def key(name: str) -> int | None:
        value = meta.get(f"{arch}.{name}")
        return int(value) if isinstance(value, (int, float)) else None

    layers = key("block_count")
    if not layers:
        raise NoAttentionGeometry(f"{arch}.block_count is missing")
    kv_lora_rank = key("attention.kv_lora_rank")
    if kv_lora_rank:  # latent attention: the compressed latent plus the shared rope key
        return layers * (kv_lora_rank + (key("rope.dimension_count") or 0)) * bytes_per_element
    heads, embd = key("attention.head_count"), key("embedding_length")
    if not heads or not embd:
        raise NoAttentionGeometry(f"{arch}.attention.head_count or embedding_length is missing")
    kv_heads = key("attention.head_count_kv") or heads
    k_len = key("attention.key_length") or embd // heads
    v_len = key("attention.value_length") or embd // heads
    return layers * kv_heads * (k_len + v_len) * bytes_per_element


def estimate(
    headers: list[GgufHeader],
    *,
    cache_lens: int,
    experts_in_ram: bool,
    overhead_bytes: int,
) -> MemoryEstimate:
    expert = dense = 0
    for header in headers:
        for tensor in header.tensors:
            if tensor.is_expert:
                expert += tensor.nbytes
            else:
                dense += tensor.nbytes
    kv = cache_lens * kv_bytes_per_token(headers)
    return MemoryEstimate(expert, dense, kv, overhead_bytes, experts_in_ram)
