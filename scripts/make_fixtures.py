#!/usr/bin/env python3
"""Write the tiny GGUF models in fixtures/ that the tests load into real llama.cpp.

Deterministic: fixed seeds, no timestamps, so re-running gives byte-identical files (a test checks
this). Each model is small (< 1 MB) but complete: llama.cpp loads it, creates contexts and decodes.

* llama-gqa.gguf   llama, 4 layers, 4 heads / 2 KV heads (GQA), head size 32
* gemma3-swa.gguf  gemma3, 8 layers, 2 heads / 1 KV head, sliding window 200 on 5 of every 6 layers (iSWA),
                   head size 64 (not n_embd / n_head, as in real Gemma 3)
* deci-varkv.gguf  deci, 4 layers, per-layer KV heads [2, 1, 4, 2] (head_count_kv as an array)
* llama-q4_0.gguf  llama-gqa's shape with Q4_0 matrices: a weight type llama.cpp repacks on x86 CPUs with
                   AVX2 (CPU_REPACK, ggml-cpu/repack.cpp) and on Arm with dotprod/i8mm

Usage: python scripts/make_fixtures.py [OUT_DIR]   (default: fixtures/ next to this script's parent)
       python scripts/make_fixtures.py --llama-1b OUT.gguf   (random 1.1B llama shape, ~2.2 GB, for GPU runs)
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

N_VOCAB = 384


def _vocab(w: gguf.GGUFWriter, n_vocab: int = N_VOCAB) -> None:
    """An SPM ('llama') vocabulary: 3 specials, 256 byte-fallback tokens, then printable pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    pieces = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["\u2581" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = ["the", "cache", "token", "llama", "memory", "key", "value", "layer", "window", "bytes"]
    pieces += ["\u2581" + wd for wd in words] + [str(d) for d in range(10)]
    while len(tokens) + len(pieces) < n_vocab:
        pieces.append(f"\u2581w{len(pieces)}")
    tokens += pieces[: n_vocab - len(tokens)]
    types += [gguf.TokenType.NORMAL] * (n_vocab - len(types))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n_vocab)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


class _Weights:
    """Random f16 matrices (std 0.02) and f32 norms of ones, from one seeded generator."""

    def __init__(self, w: gguf.GGUFWriter, seed: int, dtype=np.float64,
                 quant: gguf.GGMLQuantizationType | None = None):
        # float64 draws keep the committed fixtures byte-identical; float32 halves the time of the 1B model
        self.w, self.rng, self.dtype, self.quant = w, np.random.default_rng(seed), dtype, quant

    def mat(self, name: str, rows: int, cols: int) -> None:
        # numpy shape (rows, cols) is ggml ne = [cols, rows]: ne[0] is the input dimension
        x = self.rng.standard_normal((rows, cols), dtype=self.dtype)
        x *= 0.02
        if self.quant is None:
            self.w.add_tensor(name, x.astype(np.float16))
        else:  # gguf-py's reference quantization (gguf/quants.py): deterministic
            self.w.add_tensor(name, gguf.quants.quantize(x.astype(np.float32), self.quant), raw_dtype=self.quant)

    def norm(self, name: str, n: int) -> None:
        self.w.add_tensor(name, np.ones(n, dtype=np.float32))


def _common(w: gguf.GGUFWriter, name: str, n_layer: int, n_embd: int, n_ff: int, n_head: int,
            n_head_kv, n_ctx_train: int, n_vocab: int = N_VOCAB) -> None:
    w.add_name(name)
    w.add_block_count(n_layer)
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    _vocab(w, n_vocab)


def _llama_layers(t: _Weights, n_layer: int, n_embd: int, n_ff: int, head: int, n_head: int, kv_heads: list[int]) -> None:
    for i in range(n_layer):
        p = f"blk.{i}."
        t.norm(p + "attn_norm.weight", n_embd)
        t.mat(p + "attn_q.weight", head * n_head, n_embd)
        t.mat(p + "attn_k.weight", head * kv_heads[i], n_embd)
        t.mat(p + "attn_v.weight", head * kv_heads[i], n_embd)
        t.mat(p + "attn_output.weight", n_embd, head * n_head)
        t.norm(p + "ffn_norm.weight", n_embd)
        t.mat(p + "ffn_gate.weight", n_ff, n_embd)
        t.mat(p + "ffn_up.weight", n_ff, n_embd)
        t.mat(p + "ffn_down.weight", n_embd, n_ff)


def make_llama_like(path: Path, arch: str, name: str, kv_heads: list[int] | int, seed: int,
                    split_max_tensors: int = 0, quant: gguf.GGMLQuantizationType | None = None) -> None:
    """With ``split_max_tensors`` the model is written as shards of that many tensors each, named as
    llama-gguf-split names them (``<stem>-00001-of-0000N.gguf``), metadata in the first."""
    n_layer, n_embd, n_ff, n_head = 4, 128, 128, 4
    head = n_embd // n_head
    per_layer = kv_heads if isinstance(kv_heads, list) else [kv_heads] * n_layer
    w = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    _common(w, name, n_layer, n_embd, n_ff, n_head, kv_heads, 4096)
    w.add_rope_dimension_count(head)
    t = _Weights(w, seed, quant=quant)
    t.mat("token_embd.weight", N_VOCAB, n_embd)
    t.norm("output_norm.weight", n_embd)
    t.mat("output.weight", N_VOCAB, n_embd)
    _llama_layers(t, n_layer, n_embd, n_ff, head, n_head, per_layer)
    _write(w)


def make_llama_1b(path: Path, seed: int = 7) -> None:
    """A random-weight model of TinyLlama-1.1B's shape (22 layers, n_embd 2048, 32 heads / 4 KV heads,
    n_ff 5632, 32000 tokens, f16): for GPU memory and speed runs, where weights do not matter.
    About 2.2 GB; never committed (benchmarks/h100/README.md says how it was made)."""
    n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab = 22, 2048, 5632, 32, 4, 32000
    head = n_embd // n_head
    w = gguf.GGUFWriter(str(path), "llama")
    _common(w, "random llama 1.1B shape", n_layer, n_embd, n_ff, n_head, n_head_kv, 131072, n_vocab)
    w.add_rope_dimension_count(head)
    t = _Weights(w, seed, np.float32)
    t.mat("token_embd.weight", n_vocab, n_embd)
    t.norm("output_norm.weight", n_embd)
    t.mat("output.weight", n_vocab, n_embd)
    _llama_layers(t, n_layer, n_embd, n_ff, head, n_head, [n_head_kv] * n_layer)
    _write(w)


def make_gemma3(path: Path, seed: int) -> None:
    n_layer, n_embd, n_ff, n_head, n_head_kv, head = 8, 64, 128, 2, 1, 64
    w = gguf.GGUFWriter(str(path), "gemma3")
    _common(w, "tiny gemma3 iSWA", n_layer, n_embd, n_ff, n_head, n_head_kv, 8192)
    w.add_key_length(head)
    w.add_value_length(head)
    w.add_sliding_window(200)  # not a multiple of 256: the SWA cache is pad(200*P + n_ubatch, 256)
    w.add_rope_freq_base_swa(10000.0)
    t = _Weights(w, seed)
    t.mat("token_embd.weight", N_VOCAB, n_embd)  # gemma3 ties the output to the embeddings
    t.norm("output_norm.weight", n_embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        t.norm(p + "attn_norm.weight", n_embd)
        t.mat(p + "attn_q.weight", head * n_head, n_embd)
        t.mat(p + "attn_k.weight", head * n_head_kv, n_embd)
        t.mat(p + "attn_v.weight", head * n_head_kv, n_embd)
        t.norm(p + "attn_q_norm.weight", head)
        t.norm(p + "attn_k_norm.weight", head)
        t.mat(p + "attn_output.weight", n_embd, head * n_head)
        t.norm(p + "post_attention_norm.weight", n_embd)
        t.norm(p + "ffn_norm.weight", n_embd)
        t.mat(p + "ffn_gate.weight", n_ff, n_embd)
        t.mat(p + "ffn_up.weight", n_ff, n_embd)
        t.mat(p + "ffn_down.weight", n_embd, n_ff)
        t.norm(p + "post_ffw_norm.weight", n_embd)
    _write(w)


def _write(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


FIXTURES = {
    "llama-gqa.gguf": lambda p: make_llama_like(p, "llama", "tiny llama GQA", 2, seed=1),
    "gemma3-swa.gguf": lambda p: make_gemma3(p, seed=2),
    "deci-varkv.gguf": lambda p: make_llama_like(p, "deci", "tiny deci per-layer KV heads", [2, 1, 4, 2], seed=3),
    # llama-gqa again, split in 3 shards (split/llama-gqa-split-0000N-of-00003.gguf)
    "split/llama-gqa-split.gguf": lambda p: make_llama_like(p, "llama", "tiny llama GQA", 2, seed=1,
                                                             split_max_tensors=16),
    "llama-q4_0.gguf": lambda p: make_llama_like(p, "llama", "tiny llama Q4_0", 2, seed=4,
                                                  quant=gguf.GGMLQuantizationType.Q4_0),
}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, make in FIXTURES.items():
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        make(out_dir / name)
        for f in sorted((out_dir / name).parent.glob(Path(name).stem + "*.gguf")):
            print(f"wrote {f} ({f.stat().st_size} bytes)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--llama-1b":
        make_llama_1b(Path(sys.argv[2]))
        print(f"wrote {sys.argv[2]} ({Path(sys.argv[2]).stat().st_size} bytes)")
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures")
