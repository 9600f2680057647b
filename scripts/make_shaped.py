#!/usr/bin/env python3
"""Write a zero-weight GGUF of a real model's shape (its published config), for GPU and placement runs.

The file holds the real header -- architecture, hyper-parameters, every tensor's name, shape and
type as the quantized release has them -- and a sparse hole where the weights would be
(``truncate``): llama.cpp loads, allocates and decodes it like the original (same buffers, same
speed, meaningless tokens), while it takes a few MB on disk and nothing to download.

Shapes (from each model's config.json; types as in the common Q4_K_M release, where most matrices
are Q4_K and the embeddings, output and some V/down projections Q6_K):

* ``qwen3moe-30b-a3b``  Qwen3-30B-A3B: 48 layers, n_embd 2048, 32 heads / 4 KV heads x 128, 128 experts
                        (8 active) of FFN width 768, vocabulary 151,936, trained context 40,960 (~17 GiB)
* ``qwen2-7b``          DeepSeek-R1-Distill-Qwen-7B: 28 layers, n_embd 3584, 28 heads / 4 KV heads x 128,
                        FFN 18,944, vocabulary 152,064, trained context 131,072 (~4.4 GiB)

Usage: python scripts/make_shaped.py NAME OUT.gguf
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import _vocab  # noqa: E402

Q4_K, Q6_K, F32 = gguf.GGMLQuantizationType.Q4_K, gguf.GGMLQuantizationType.Q6_K, gguf.GGMLQuantizationType.F32


@dataclass(frozen=True)
class Shape:
    arch: str
    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    qk_norm: bool = False
    qkv_bias: bool = False


SHAPES = {
    "qwen3moe-30b-a3b": Shape("qwen3moe", "Qwen3-30B-A3B shape (zero weights)", 48, 2048, 32, 4, 128, 6144,
                              151936, 40960, n_expert=128, n_expert_used=8, n_ff_exp=768, qk_norm=True),
    "qwen2-7b": Shape("qwen2", "DeepSeek-R1-Distill-Qwen-7B shape (zero weights)", 28, 3584, 28, 4, 128, 18944,
                      152064, 131072, qkv_bias=True),
}


def nbytes(qtype: gguf.GGMLQuantizationType, ne: tuple[int, ...]) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(ne)) // block * size


def write(shape: Shape, path: Path) -> None:
    s = shape
    w = gguf.GGUFWriter(str(path), s.arch)
    w.add_name(s.name)
    w.add_block_count(s.n_layer)
    w.add_context_length(s.n_ctx_train)
    w.add_embedding_length(s.n_embd)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_key_length(s.head_dim)
    w.add_value_length(s.head_dim)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    if s.n_expert:
        w.add_expert_count(s.n_expert)
        w.add_expert_used_count(s.n_expert_used)
        w.add_expert_feed_forward_length(s.n_ff_exp)
    _vocab(w, s.n_vocab)
    size = 0

    def tensor(name: str, ne: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> None:
        nonlocal size
        n = nbytes(qtype, ne)
        # numpy order (reversed ne); a float32 dtype tag with raw_dtype: the shape is taken as given
        w.add_tensor_info(name, tuple(reversed(ne)), np.dtype(np.float32), n, raw_dtype=qtype)
        size += gguf.GGUFWriter.ggml_pad(n, w.data_alignment)

    q, kv = s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    tensor("token_embd.weight", (s.n_embd, s.n_vocab), Q6_K)
    for il in range(s.n_layer):
        b = f"blk.{il}."
        tensor(b + "attn_norm.weight", (s.n_embd,), F32)
        tensor(b + "attn_q.weight", (s.n_embd, q), Q4_K)
        tensor(b + "attn_k.weight", (s.n_embd, kv), Q4_K)
        tensor(b + "attn_v.weight", (s.n_embd, kv), Q6_K if il % 2 == 0 else Q4_K)
        tensor(b + "attn_output.weight", (q, s.n_embd), Q4_K)
        if s.qkv_bias:
            for t, n in (("q", q), ("k", kv), ("v", kv)):
                tensor(b + f"attn_{t}.bias", (n,), F32)
        if s.qk_norm:
            tensor(b + "attn_q_norm.weight", (s.head_dim,), F32)
            tensor(b + "attn_k_norm.weight", (s.head_dim,), F32)
        tensor(b + "ffn_norm.weight", (s.n_embd,), F32)
        if s.n_expert:
            tensor(b + "ffn_gate_inp.weight", (s.n_embd, s.n_expert), F32)
            tensor(b + "ffn_gate_exps.weight", (s.n_embd, s.n_ff_exp, s.n_expert), Q4_K)
            tensor(b + "ffn_up_exps.weight", (s.n_embd, s.n_ff_exp, s.n_expert), Q4_K)
            tensor(b + "ffn_down_exps.weight", (s.n_ff_exp, s.n_embd, s.n_expert), Q6_K if il % 2 == 0 else Q4_K)
        else:
            tensor(b + "ffn_gate.weight", (s.n_embd, s.n_ff), Q4_K)
            tensor(b + "ffn_up.weight", (s.n_embd, s.n_ff), Q4_K)
            tensor(b + "ffn_down.weight", (s.n_ff, s.n_embd), Q6_K if il % 2 == 0 else Q4_K)
    tensor("output_norm.weight", (s.n_embd,), F32)
    tensor("output.weight", (s.n_embd, s.n_vocab), Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header = path.stat().st_size
    data_offset = gguf.GGUFWriter.ggml_pad(header, w.data_alignment)
    os.truncate(path, data_offset + size)  # the weights: a hole of zeros


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        print(f"usage: {sys.argv[0]} {{{','.join(SHAPES)}}} OUT.gguf", file=sys.stderr)
        return 2
    path = Path(sys.argv[2])
    write(SHAPES[sys.argv[1]], path)
    print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB, sparse)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
