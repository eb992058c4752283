"""Real GGUF shards written with the gguf package, served by the Hub stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from tests.support.hub_standin import HubStandIn

QUANT = "Q4_K_M"
FOLDER = f"DeepSeek-V3-{QUANT}"
GGUF_REPO = "unsloth/DeepSeek-V3-GGUF"
CONFIG_REPO = "deepseek-ai/DeepSeek-V3"


def write_shards(
    directory: Path, count: int = 3, mib_per_shard: int = 8, folder: str = FOLDER
) -> list[Path]:
    """`count` shards, each with one expert tensor (*_exps) and one dense tensor; split.* keys set."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    floats = mib_per_shard * 2**20 // 4
    for index in range(count):
        path = directory / f"{folder}-{index + 1:05d}-of-{count:05d}.gguf"
        writer = GGUFWriter(str(path), "deepseek2")
        writer.add_uint16("split.no", index)
        writer.add_uint16("split.count", count)
        writer.add_int32("split.tensors.count", 2 * count)
        writer.add_block_count(61)
        if index == 0:  # split GGUFs carry the model's metadata in the first shard only
            writer.add_embedding_length(7168)
            writer.add_head_count(128)
            writer.add_kv_lora_rank(512)
            writer.add_rope_dimension_count(64)
        experts = rng.standard_normal(floats * 3 // 4, dtype=np.float32)
        dense = rng.standard_normal(floats // 4, dtype=np.float32)
        writer.add_tensor(f"blk.{index}.ffn_down_exps.weight", experts)
        writer.add_tensor(f"blk.{index}.attn_kv_a_mqa.weight", dense)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        paths.append(path)
    return paths


def write_config_files(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "config.json": json.dumps(
            {
                "architectures": ["DeepseekV3ForCausalLM"],
                "num_hidden_layers": 61,
                "hidden_size": 7168,
            },
            indent=2,
        ),
        "configuration_deepseek.py": "# DeepSeek-V3 configuration (test copy)\nclass DeepseekV3Config:\n    model_type = 'deepseek_v3'\n"
        + "#" * 2000
        + "\n",
        "generation_config.json": json.dumps({"temperature": 0.3}),
        "tokenizer.json": json.dumps(
            {"model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(500)}}}
        ),
        "tokenizer_config.json": json.dumps({"model_max_length": 16384}),
        "model-00001-of-00163.safetensors": "weights that must not be fetched" * 100,
    }
    out = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        out.append(path)
    return out


def publish(
    hub: HubStandIn, workdir: Path, shards: int = 3, mib_per_shard: int = 8
) -> dict[str, object]:
    shard_paths = write_shards(workdir / "gguf", shards, mib_per_shard)
    for path in shard_paths:
        hub.add_file(GGUF_REPO, f"{FOLDER}/{path.name}", path)
    other = write_shards(workdir / "gguf-q2", 1, 1, folder="DeepSeek-V3-Q2_K_XS")
    hub.add_file(GGUF_REPO, f"DeepSeek-V3-Q2_K_XS/{other[0].name}", other[0])
    for path in write_config_files(workdir / "config"):
        hub.add_file(CONFIG_REPO, path.name, path)
    return {"shards": shard_paths, "total": sum(p.stat().st_size for p in shard_paths)}
