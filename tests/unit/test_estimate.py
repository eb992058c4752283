"""The memory estimator on generated GGUFs whose tensor sizes are known."""

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from leviathan_tui.estimate import (
    NoAttentionGeometry,
    NotGguf,
    estimate,
    kv_bytes_per_token,
    read_header,
    read_local_header,
)

DEEPSEEK_V3_MLA = {"block_count": 61, "attention.kv_lora_rank": 512, "rope.dimension_count": 64}


def write(
    path: Path,
    tensors: dict[str, np.ndarray],
    pad_kv: int = 0,
    arch: str = "deepseek2",
    geometry: dict[str, int] | None = None,
) -> Path:
    writer = GGUFWriter(str(path), arch)
    writer.add_uint16("split.count", 1)
    for key, value in (DEEPSEEK_V3_MLA if geometry is None else geometry).items():
        writer.add_uint32(f"{arch}.{key}", value)
    if pad_kv:
        writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(pad_kv)])
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_experts_go_to_ram_the_rest_and_kv_to_vram(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.gguf",
        {
            "blk.0.ffn_gate_exps.weight": np.zeros((64, 1024), dtype=np.float32),  # 256 KiB
            "blk.0.ffn_up_exps.weight": np.zeros((64, 512), dtype=np.float16),  # 64 KiB
            "blk.0.attn_q_a.weight": np.zeros((128, 256), dtype=np.float32),  # 128 KiB
        },
    )
    b = write(
        tmp_path / "b.gguf",
        {"token_embd.weight": np.zeros((1000, 64), dtype=np.float16)},
        geometry={},  # later shards carry no model metadata
    )  # 125 KiB
    headers = [read_local_header(str(a)), read_local_header(str(b))]
    est = estimate(headers, cache_lens=8192, experts_in_ram=True, overhead_bytes=1000)
    assert est.expert_bytes == 64 * 1024 * 4 + 64 * 512 * 2
    assert est.dense_bytes == 128 * 256 * 4 + 1000 * 64 * 2
    # DeepSeek-V3's latent cache: 61 layers x (512 + 64) f16 per token (KTransformers' 2 x 576 x 61)
    assert est.kv_cache_bytes == 8192 * 2 * 576 * 61
    assert est.ram_bytes == est.expert_bytes + 1000
    assert est.vram_bytes == est.dense_bytes + est.kv_cache_bytes
    all_gpu = estimate(headers, cache_lens=8192, experts_in_ram=False, overhead_bytes=0)
    assert all_gpu.vram_bytes == est.expert_bytes + est.dense_bytes + est.kv_cache_bytes


def test_header_read_from_a_prefix_asks_for_more_when_needed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "big-kv.gguf", {"x_exps": np.zeros((8, 8), dtype=np.float32)}, pad_kv=200_000
    )
    data = path.read_bytes()
    asked: list[int] = []

    def prefix(n: int) -> bytes:
        asked.append(n)
        return data[:n]

    header = read_header(prefix, start=64 * 1024)
    assert [t.name for t in header.tensors] == ["x_exps"]
    assert len(asked) > 1 and asked[-1] < len(data) * 4


def test_not_a_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"NOPE" + b"\0" * 100)
    with pytest.raises(NotGguf):
        read_local_header(str(junk))
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(
        (write(tmp_path / "full.gguf", {"a": np.zeros(4, dtype=np.float32)})).read_bytes()[:30]
    )
    with pytest.raises(NotGguf):
        read_local_header(str(truncated))


def test_kv_cache_follows_the_latent_attention_geometry_in_the_header(tmp_path: Path) -> None:
    tiny = {"block_count": 4, "attention.kv_lora_rank": 256, "rope.dimension_count": 32}
    path = write(tmp_path / "tiny.gguf", {"a": np.zeros(4, dtype=np.float32)}, geometry=tiny)
    headers = [read_local_header(str(path))]
    assert kv_bytes_per_token(headers) == 4 * (256 + 32) * 2
    est = estimate(headers, cache_lens=1000, experts_in_ram=True, overhead_bytes=0)
    assert est.kv_cache_bytes == 1000 * 4 * 288 * 2


def test_kv_cache_of_a_standard_attention_model_has_k_and_v(tmp_path: Path) -> None:
    gqa = {
        "block_count": 32,
        "embedding_length": 4096,
        "attention.head_count": 32,
        "attention.head_count_kv": 8,
    }
    path = write(
        tmp_path / "gqa.gguf", {"a": np.zeros(4, dtype=np.float32)}, arch="llama", geometry=gqa
    )
    # 8 kv heads x (128 K + 128 V) x 32 layers x f16
    assert kv_bytes_per_token([read_local_header(str(path))]) == 32 * 8 * 256 * 2


def test_a_header_without_attention_geometry_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "bare.gguf", {"a": np.zeros(4, dtype=np.float32)}, geometry={})
    with pytest.raises(NoAttentionGeometry, match="block_count"):
        estimate(
            [read_local_header(str(path))], cache_lens=8, experts_in_ram=True, overhead_bytes=0
        )
