"""Time generation with the KV cache against recomputing the whole prefix for every token.

Started by ``measure/speedup.py`` through the worker protocol (measure/workers.py), one process for
the whole run. One context of ``max(n)`` cells (f16 cache, ``n_batch = max(n)`` so that a whole
prefix is one ``llama_decode``) serves both modes, on the same token sequence (BOS when the
vocabulary adds one, then seeded random ids, as the sweep's):

* ``cached``: the memory is cleared once, then step i decodes token i alone (1 token evaluated);
* ``uncached``: step i clears the memory and decodes tokens 0..i (i + 1 tokens evaluated), logits of
  the last one only -- what an implementation without a KV cache computes for each new token.

Each step is timed by itself (``llama_decode`` + ``llama_synchronize``; the clear is not timed), so
the record holds the time per token against its position. The tokens each step evaluated are read
from llama.cpp's own counters (``llama_perf_context``: ``n_eval`` + ``n_p_eval``, counted at every
synchronize even with ``no_perf``), not assumed. Repetitions, their count (``auto`` included) and the
machine's state beside each are the sweep worker's (measure/repeat.py); the two modes alternate which
goes first from one repetition to the next, so a slow period costs both.
"""

from __future__ import annotations

import random
import sys
import time

from .bindings import L

from ..errors import GgufprofError
from ..memory.settings import KVSettings
from . import environment
from .llama_ctx import LlamaModel, bos_token, decode, log_capture
from .repeat import machine, more, noise_sample, speed_test
from .workers import progress, serve


class _Steps:
    """One context and one token sequence; each mode's n steps timed one by one."""

    def __init__(self, ctx, model, n_max: int, seed: int):
        self.ctx, self.mem = ctx, L.llama_get_memory(ctx)
        n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        rng = random.Random(seed)
        self.tokens = (L.llama_token * n_max)(*[rng.randrange(n_vocab) for _ in range(n_max)])
        bos = bos_token(model)
        if bos is not None:
            self.tokens[0] = bos
        self.one = (L.llama_token * 1)()

    def evaluated(self) -> int:
        """Tokens llama.cpp has evaluated in this context so far (its perf counters; both are >= 1
        after the warm-up, so the max(1, ...) llama.cpp applies never hides a count)."""
        d = L.llama_perf_context(self.ctx)
        return d.n_eval + d.n_p_eval

    def warm_up(self) -> None:
        L.llama_memory_clear(self.mem, False)
        decode(self.ctx, L.llama_batch_get_one(self.tokens, 2), "warm-up decode")
        L.llama_synchronize(self.ctx)
        L.llama_memory_clear(self.mem, False)
        self.one[0] = self.tokens[0]
        decode(self.ctx, L.llama_batch_get_one(self.one, 1), "warm-up decode")
        L.llama_synchronize(self.ctx)

    def run(self, mode: str, n: int) -> tuple[list[float], list[int]]:
        """(seconds, tokens evaluated) of each of the n steps of one mode."""
        times, work = [], []
        L.llama_memory_clear(self.mem, False)
        for i in range(n):
            if mode == "cached":
                self.one[0] = self.tokens[i]
                batch = L.llama_batch_get_one(self.one, 1)
            else:
                L.llama_memory_clear(self.mem, False)
                batch = L.llama_batch_get_one(self.tokens, i + 1)
            before = self.evaluated()
            t = time.perf_counter()
            decode(self.ctx, batch, f"llama_decode ({mode}, step {i})")
            L.llama_synchronize(self.ctx)
            times.append(time.perf_counter() - t)
            work.append(self.evaluated() - before)
        return times, work


def _work(mode: str, n: int) -> int:
    """Tokens one run evaluates: n with the cache, 1 + 2 + ... + n without (the progress' unit)."""
    return n if mode == "cached" else n * (n + 1) // 2


class _Done:
    """Tokens evaluated so far against the whole plan's (None with --repetitions auto), told to the parent."""

    def __init__(self, n_gen: list[int], repetitions: int):
        self.done = 0
        self.total = sum(_work(m, n) for n in n_gen for m in ("cached", "uncached")) * repetitions \
            if repetitions > 0 else None

    def add(self, mode: str, n: int) -> None:
        self.done += _work(mode, n)
        progress(self.done, self.total, f"n={n}: {mode}, {self.done:,} tokens evaluated")


def _point(steps: _Steps, n: int, repetitions: int, done: _Done | None = None) -> dict:
    runs: dict[str, list[list[float]]] = {"cached": [], "uncached": []}
    work: dict[str, list[int]] = {}
    noise: dict[str, list[dict]] = {"cached": [], "uncached": []}
    rep = 0
    while any(more(repetitions, [sum(r) for r in runs[m]], n) for m in runs):
        order = ("cached", "uncached") if rep % 2 == 0 else ("uncached", "cached")
        for mode in order:
            if more(repetitions, [sum(r) for r in runs[mode]], n):
                before = machine()
                times, counts = steps.run(mode, n)
                if done is not None:
                    done.add(mode, n)
                noise[mode].append(noise_sample(before, machine()))
                runs[mode].append(times)
                if work.setdefault(mode, counts) != counts:
                    raise GgufprofError(f"{mode}, n={n}: the tokens evaluated per step changed between repetitions")
        rep += 1
    out: dict = {"n": n}
    for mode in runs:
        block = speed_test(n, [sum(r) for r in runs[mode]], 1, noise[mode])
        block["per_token_s"] = [sum(col) / len(col) for col in zip(*runs[mode])]
        block["tokens_evaluated"] = work[mode]
        out[mode] = block
    return out


def measure(model_path: str, n_gen: list[int], threads: int, repetitions: int, repack: bool, seed: int) -> dict:
    log = log_capture()
    n_max = max(n_gen)
    kv = KVSettings(ctx_size=n_max, batch_size=n_max)
    with LlamaModel(model_path, 0, repack) as lm:
        c = lm.create_context(kv, threads)
        try:
            steps = _Steps(c.ctx, lm.model, n_max, seed)
            steps.warm_up()
            done = _Done(n_gen, repetitions)
            points = [_point(steps, n, repetitions, done) for n in n_gen]
            resolved = {"n_ctx": c.n_ctx, "n_batch": L.llama_n_batch(c.ctx), "n_ubatch": L.llama_n_ubatch(c.ctx),
                        "flash_attn": c.log.flash_attn_resolved}
        finally:
            lm.free_context(c)
    log.take()
    return {"points": points, "resolved": resolved, "settings": {**vars(kv)},
            "env": environment.collect(L, None, "not asked (CPU timing)")}


def handle(request: dict) -> dict:
    """``{"model_path", "n_gen": [n, ...], "threads", "repetitions", "repack", "seed"}`` -> the points."""
    n_gen = request["n_gen"]
    if not n_gen or any(not isinstance(n, int) or n < 1 for n in n_gen):
        raise GgufprofError(f"numbers of generated tokens must be integers >= 1, got {n_gen}")
    return measure(request["model_path"], n_gen, request["threads"], request["repetitions"], request.get("repack", True),
                   request.get("seed", 1234))


if __name__ == "__main__":
    sys.exit(serve(handle))
