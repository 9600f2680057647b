"""Measure what each KV cache type costs in quality: one text, f16/f16 against each cache type pair.

Run in its own process by ``measure/quality.py`` (``run_quality``) through the worker protocol
(measure/workers.py), as the sweep's worker is, so llama.cpp's memory
and a crash stay out of the caller. ``measure_quality`` follows ``kl_divergence()`` in llama.cpp's
tools/perplexity/perplexity.cpp: the text is tokenized once (``common_tokenize(ctx, text, true)``:
special tokens added, none parsed), cut into chunks of ``n_ctx`` tokens, the KV cache cleared before
each chunk, each chunk's first token replaced by BOS when the vocabulary adds one, logits requested
for positions ``>= n_ctx/2`` and positions ``n_ctx/2 .. n_ctx-2`` scored against the next token.

How memory stays bounded (with a 262k-token vocabulary, the scored half of one 2048-token chunk is
1 GiB of float32 logits per cache type; llama-perplexity's base file is 11-37 GiB on Wikitext-2):
the model is loaded once and one context is created per cache type pair plus one f16/f16 baseline,
all alive together. Each chunk is decoded in the same pieces of ``n_ubatch`` tokens in every context, one
after the other; after each piece the scored rows are read in place from llama.cpp's output buffers
(``llama_get_logits``: at most ``n_ubatch x n_vocab`` floats per context) and compared a few rows at
a time in float64 (measure/kld.py: ~8 MiB of scratch). What is kept across the text is only one
KLD, NLL and top-1 flag per scored position. Memory is therefore (pairs + 1) x (KV cache of
``n_ctx`` cells + compute buffer + one piece's logits), whatever the length of the text, and the
baseline is evaluated once for all pairs, not once per pair.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .bindings import L
import numpy as np

from ..memory.settings import KVSettings
from ..results import files, quality as Q
from . import environment
from .kld import RowComparer
from .llama_ctx import LlamaModel, bos_token, decode, log_capture
from .sampling import peak_rss_rusage
from .workers import progress, serve



def tokenize(model, raw: bytes) -> np.ndarray:
    """``common_tokenize(ctx, text, add_special=true, parse_special=false)`` (common/common.cpp).

    The buffer starts at a third of a token per byte (English runs at ~4 bytes per token) and is
    made exactly as large as llama.cpp asks when that is short (it returns minus the count)."""
    vocab = L.llama_model_get_vocab(model)
    n_max = len(raw) // 3 + 16
    buf = (L.llama_token * n_max)()
    n = L.llama_tokenize(vocab, raw, len(raw), buf, n_max, True, False)
    if n < 0:
        buf = (L.llama_token * -n)()
        n = L.llama_tokenize(vocab, raw, len(raw), buf, -n, True, False)
    return np.ctypeslib.as_array(buf)[:n].astype(np.int32)


def read_tokens(model, text: str | None, need: int | None) -> tuple[np.ndarray, dict]:
    """The text's tokens, reading and tokenizing only what ``need`` tokens take (None: all of it).

    The text is read in ever longer prefixes (results.quality.text_prefixes: the first ~8 bytes per
    token needed, cut before a whitespace) and each is tokenized whole until it holds ``need``
    tokens beyond the last TOKEN_MARGIN, which are dropped: near the cut a prefix may tokenize
    otherwise than the whole text, far from it not. So the memory of a run with --chunks is that of
    its chunks, whatever the length of the file; ``text`` in the result says what was read."""
    first = Q.MAX_TEXT_BYTES if need is None else (need + Q.TOKEN_MARGIN) * 8
    for prefix, complete, file_bytes in Q.text_prefixes(text, first):
        tokens = tokenize(model, prefix)
        kept = len(tokens) if complete else len(tokens) - Q.TOKEN_MARGIN
        if complete or kept >= need:
            return tokens[:kept], Q.text_info(text, prefix, complete, file_bytes, kept)
    raise AssertionError("text_prefixes ends with the whole text")


class _Batch:
    """One llama_batch for one sequence, filled per piece through numpy views (no per-token ctypes)."""

    def __init__(self, size: int):
        self.batch = L.llama_batch_init(size, 0, 1)
        self.token = np.ctypeslib.as_array(self.batch.token, shape=(size,))
        self.pos = np.ctypeslib.as_array(self.batch.pos, shape=(size,))
        self.logits = np.ctypeslib.as_array(self.batch.logits, shape=(size,))
        np.ctypeslib.as_array(self.batch.n_seq_id, shape=(size,))[:] = 1
        for i in range(size):
            self.batch.seq_id[i][0] = 0

    def fill(self, tokens: np.ndarray, start: int, first: int) -> int:
        """Tokens at positions start.. with logits for positions >= first; returns the output count."""
        n = len(tokens)
        self.token[:n] = tokens
        self.pos[:n] = np.arange(start, start + n)
        want = self.pos[:n] >= first
        self.logits[:n] = want
        self.batch.n_tokens = n
        return int(want.sum())

    def free(self) -> None:
        L.llama_batch_free(self.batch)


def measure_quality(model_path: str, s: Q.QualitySettings, log: list[str] | None = None) -> dict:
    """Every pair of ``s.cache_types`` against f16/f16 over the same chunks; {"results", "text", ...}."""
    capture = log_capture()
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    lm = LlamaModel(model_path, placement=s.placement)
    timings["load_s"] = time.perf_counter() - t
    contexts = []
    batch = None
    try:
        n_ctx = Q.resolve_ctx(s.ctx, L.llama_model_n_ctx_train(lm.model))
        t = time.perf_counter()
        tokens, text_info = read_tokens(lm.model, s.text, Q.tokens_needed(n_ctx, s.chunks))
        timings["tokenize_s"] = time.perf_counter() - t
        n_chunk = Q.chunk_count(len(tokens), n_ctx, s.chunks)
        text_info["n_tokens_used"] = n_chunk * n_ctx
        vocab = L.llama_model_get_vocab(lm.model)
        n_vocab = L.llama_vocab_n_tokens(vocab)
        bos = bos_token(lm.model)
        piece = min(s.ubatch_size, n_ctx)
        pairs = [Q.BASELINE] + [tuple(p) for p in s.cache_types]
        for k, v in pairs:
            # llama-perplexity's context: one sequence per chunk, swa_full off (common_params' default)
            kv = KVSettings(ctx_size=n_ctx, cache_type_k=k, cache_type_v=v, swa_full=False, batch_size=piece,
                            ubatch_size=piece, flash_attn=s.flash_attn)
            kv.validate()
            contexts.append(lm.create_context(kv, s.threads, s.offload_kqv))
        fa = [c.log.flash_attn_resolved for c in contexts]
        batch = _Batch(piece)
        comparer = RowComparer(n_vocab)
        first = Q.first_scored(n_ctx)
        n_pairs = len(pairs) - 1
        kld = [[] for _ in range(n_pairs)]
        nll = [[] for _ in range(n_pairs)]
        top = [[] for _ in range(n_pairs)]
        nll_base, positions = [], []
        decode_s = [0.0] * len(contexts)
        compare_s = 0.0
        for ch in range(n_chunk):
            progress(ch, n_chunk, f"chunk {ch + 1} of {n_chunk}: {n_ctx} tokens in {len(contexts)} contexts")
            chunk = tokens[ch * n_ctx:(ch + 1) * n_ctx].copy()
            targets = chunk.copy()  # the next tokens are the text's own, never the BOS put in front
            if bos is not None:
                chunk[0] = bos
            for c in contexts:
                L.llama_memory_clear(L.llama_get_memory(c.ctx), True)
            for start in range(0, n_ctx, piece):
                n_out = batch.fill(chunk[start:start + piece], start, first)
                for i, c in enumerate(contexts):
                    t = time.perf_counter()
                    decode(c.ctx, batch.batch)
                    if n_out:
                        L.llama_synchronize(c.ctx)
                    decode_s[i] += time.perf_counter() - t
                if not n_out:
                    continue
                t = time.perf_counter()
                p0 = max(start, first)
                n_rows = min(start + piece, n_ctx - 1) - p0  # the last position has no next token
                views = [np.ctypeslib.as_array(L.llama_get_logits(c.ctx), shape=(n_out, n_vocab))
                         for c in contexts]
                for r in range(0, n_rows, comparer.rows):
                    r1 = min(r + comparer.rows, n_rows)
                    pos = np.arange(p0 + r, p0 + r1)
                    tgt = targets[pos + 1]
                    base = comparer.base(views[0][r:r1], tgt)
                    nll_base.append(base.nll)
                    positions.append(pos)
                    for j in range(n_pairs):
                        st = comparer.compare(base, views[j + 1][r:r1], tgt)
                        kld[j].append(st.kld)
                        nll[j].append(st.nll)
                        top[j].append(st.same_top)
                compare_s += time.perf_counter() - t
        timings["decode_s"] = sum(decode_s)
        timings["compare_s"] = compare_s
        timings["total_s"] = time.perf_counter() - t_all
        nb, pos_all = np.concatenate(nll_base), np.concatenate(positions)
        peak = peak_rss_rusage()  # the worker's high-water mark: bounded by the contexts, not the text
        results = []
        for j, pair in enumerate(pairs[1:]):
            run = {"flash_attn": fa[j + 1], "flash_attn_base": fa[0], "threads": s.threads,
                   "decode_s": decode_s[j + 1], "decode_base_s": decode_s[0], "peak_rss": peak}
            results.append(Q.summarize(pair, np.concatenate(kld[j]), np.concatenate(nll[j]), nb,
                                       np.concatenate(top[j]), pos_all, n_ctx, n_chunk, text_info, run).to_dict())
        return {"results": results, "text": text_info, "n_ctx": n_ctx, "n_chunks": n_chunk, "n_vocab": n_vocab,
                "timings": timings, "peak_rss": peak}
    finally:
        if batch is not None:
            batch.free()
        for c in contexts:
            lm.free_context(c)
        lm.close()
        if log is not None:
            log.append(lm.load_log_text + "".join(c.log_text for c in contexts) + capture.take())


def handle(request: dict) -> dict:
    """``{"model_path", "settings", "log_path"}`` -> {"results", "text", ..., "env"}; llama.cpp's log
    is written to ``log_path`` whatever happens."""
    log: list[str] = []
    try:
        result = measure_quality(request["model_path"], Q.QualitySettings.from_dict(request["settings"]), log)
        result["env"] = environment.collect(L, None, "not collected for quality runs")
        return result
    finally:
        if request.get("log_path"):
            files.write_file(Path(request["log_path"]), "".join(log) + log_capture().take())


if __name__ == "__main__":
    sys.exit(serve(handle))
