"""Run ONE configuration in this process and write its measurements as JSON.

Started by ``measure/sweep.py`` through the worker protocol (measure/workers.py). The sweep starts one worker process per configuration, so the RSS is attributable to that
configuration alone and a crash or abort inside llama.cpp costs one configuration, not the sweep.
The timing follows llama-bench (tools/llama-bench/llama-bench.cpp): a warm-up prompt run and one
generated token; then per repetition the cache is cleared, the depth restored from a saved state,
and ``n_prompt`` tokens (in ``n_batch`` chunks) or ``n_gen`` single tokens are timed, each with a
final ``llama_synchronize``. Tokens are random ids (seeded), as in llama-bench.

Test hook: GGUFPROF_WORKER_ABORT=<substring of the config id> makes the worker abort() right after
creating the context, to prove a crash costs one configuration only.
"""

from __future__ import annotations

import ctypes
import os
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from .bindings import L

from ..errors import GgufprofError
from ..results import files
from ..results.run_settings import RunSettings
from .llama_ctx import ContextRefused, LlamaModel, backend_devices, bos_token, decode, log_capture
from .repeat import machine, more, noise_sample, speed_test
from .sampling import RssSampler, Vram, peak_rss_rusage
from . import environment
from .workers import serve

class _Decoder:
    def __init__(self, ctx, model, n_batch: int, seed: int = 1234):
        self.ctx = ctx
        vocab = L.llama_model_get_vocab(model)
        self.n_vocab = L.llama_vocab_n_tokens(vocab)
        self.bos = bos_token(model)
        self.n_batch = n_batch
        self.rng = random.Random(seed)
        self.mem = L.llama_get_memory(ctx)

    def prompt(self, n: int) -> None:
        buf = (L.llama_token * self.n_batch)()  # one buffer for every chunk; the batch points into it
        done = 0
        while done < n:
            k = min(self.n_batch, n - done)
            for i in range(k):
                buf[i] = self.rng.randrange(self.n_vocab)
            if done == 0 and self.bos is not None:
                buf[0] = self.bos
            decode(self.ctx, L.llama_batch_get_one(buf, k))
            done += k
        L.llama_synchronize(self.ctx)

    def generate(self, n: int) -> None:
        """n single-token decodes. The loop body is kept minimal (one preallocated token and batch,
        functions bound to locals): it is the per-token Python overhead that llama-bench has not."""
        one = (L.llama_token * 1)(self.bos if self.bos is not None else self.rng.randrange(self.n_vocab))
        batch = L.llama_batch_get_one(one, 1)
        decode, sync, ctx, rand, n_vocab = L.llama_decode, L.llama_synchronize, self.ctx, self.rng.randrange, self.n_vocab
        for _ in range(n):
            if decode(ctx, batch) != 0:
                raise GgufprofError("llama_decode failed during generation")
            sync(ctx)
            one[0] = rand(n_vocab)

    def clear(self) -> None:
        L.llama_memory_clear(self.mem, False)


class _ParallelDecoder:
    """``n_seq`` sequences decoded together, as llama-batched-bench (tools/batched-bench) times them:
    pp = every sequence's prompt in one batch, decoded in ``n_batch`` views (decode_helper); tg = one
    token per sequence per step. Batches are built before the clock starts, as there."""

    def __init__(self, dec: _Decoder, n_seq: int):
        self.dec, self.n_seq = dec, n_seq
        self.pos = [0] * n_seq

    def _batch(self, n_tokens: int):
        return L.llama_batch_init(max(n_tokens, 1), 0, 1)

    @staticmethod
    def _view(batch, start: int, n: int):
        """llama_batch of ``n`` tokens starting at ``start`` of ``batch`` (pointers offset, no copy)."""
        v = L.llama_batch()
        v.n_tokens = n
        for name, ctype in (("token", L.llama_token), ("pos", L.llama_pos), ("n_seq_id", ctypes.c_int32),
                            ("seq_id", ctypes.POINTER(L.llama_seq_id)), ("logits", ctypes.c_int8)):
            base = ctypes.cast(getattr(batch, name), ctypes.c_void_p).value
            setattr(v, name, ctypes.cast(base + start * ctypes.sizeof(ctype), ctypes.POINTER(ctype)))
        return v

    def prompt(self, n: int) -> float:
        """Seconds to decode ``n`` prompt tokens in each sequence (positions continue per sequence)."""
        d = self.dec
        batch = self._batch(n * self.n_seq)
        try:
            i = 0
            for s in range(self.n_seq):
                for k in range(n):
                    batch.token[i] = d.bos if (self.pos[s] == 0 and k == 0 and d.bos is not None) else d.rng.randrange(d.n_vocab)
                    batch.pos[i] = self.pos[s] + k
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = s
                    batch.logits[i] = k == n - 1
                    i += 1
                self.pos[s] += n
            t = time.perf_counter()
            for start in range(0, i, d.n_batch):
                decode(d.ctx, self._view(batch, start, min(d.n_batch, i - start)))
            L.llama_synchronize(d.ctx)
            return time.perf_counter() - t
        finally:
            L.llama_batch_free(batch)

    def generate(self, n: int) -> float:
        """Seconds for ``n`` steps of one new token in every sequence."""
        d = self.dec
        batch = self._batch(self.n_seq)
        try:
            batch.n_tokens = self.n_seq
            for s in range(self.n_seq):
                batch.n_seq_id[s] = 1
                batch.seq_id[s][0] = s
                batch.logits[s] = True
            decode, sync, ctx, rand, n_vocab = L.llama_decode, L.llama_synchronize, d.ctx, d.rng.randrange, d.n_vocab
            t = time.perf_counter()
            for _ in range(n):
                for s in range(self.n_seq):
                    batch.token[s] = rand(n_vocab)
                    batch.pos[s] = self.pos[s]
                    self.pos[s] += 1
                if decode(ctx, batch) != 0:
                    raise GgufprofError("llama_decode failed during parallel generation")
                sync(ctx)
            return time.perf_counter() - t
        finally:
            L.llama_batch_free(batch)

    def clear(self) -> None:
        self.dec.clear()
        self.pos = [0] * self.n_seq


def measure(model_path: str, rs: RunSettings, log_path: Path | None = None) -> dict:
    capture = log_capture()
    sampler = RssSampler()
    vram = Vram()
    pid = os.getpid()
    rss = {"baseline": sampler.rss()}
    vram_m = {"baseline_process": vram.process_bytes(pid), "baseline_devices": vram.device_used()}
    env = environment.collect(L, vram.info(), vram.reason)
    # llama.cpp's devices as this load sees them (its rpc-servers added first, as --rpc does): the list
    # the prediction places layers on, with the free memory that splits them when -ts is not given
    # (load_tensors, src/llama-model.cpp). Asking a GPU for its free memory creates this process's CUDA
    # context (~0.5 GiB that no buffer accounts for), as llama.cpp's --fit does before it measures: the
    # baseline that allocations are counted from. The free/total figures are what --fit budgets against.
    devices = [asdict(d) for d in backend_devices(rs.placement.rpc)]
    if vram.available:
        env["backend_devices"] = devices
        vram_m["after_init_process"] = vram.process_bytes(pid)
    timings: dict[str, float] = {}
    log_text = ""
    t_all = time.perf_counter()
    try:
        with sampler:
            t = time.perf_counter()
            try:
                lm = LlamaModel(model_path, placement=rs.placement)
            except ContextRefused as e:
                log_text += e.log_text
                raise
            log_text += lm.load_log_text
            timings["load_s"] = time.perf_counter() - t
            rss["after_load"] = sampler.rss()
            vram_m["after_load_process"] = vram.process_bytes(pid)
            t = time.perf_counter()
            try:
                c = lm.create_context(rs.kv, rs.threads, rs.offload_kqv)
            except ContextRefused as e:  # its log is llama.cpp's reason: keep it with the record
                log_text += e.log_text
                raise
            log_text += c.log_text
            timings["context_s"] = time.perf_counter() - t
            rss["after_context"] = sampler.rss()
            vram_m["after_context_process"] = vram.process_bytes(pid)
            vram_m["after_context_devices"] = vram.device_used()
            hook = os.environ.get("GGUFPROF_WORKER_ABORT")
            if hook and hook in rs.id:
                sys.stderr.write(f"GGUFPROF_WORKER_ABORT matched {rs.id}: aborting\n")
                sys.stderr.flush()
                os.abort()

            dec = _Decoder(c.ctx, lm.model, L.llama_n_batch(c.ctx))
            t = time.perf_counter()
            if rs.n_prompt > 0:
                dec.prompt(rs.n_prompt)
            if rs.n_gen > 0:
                dec.clear()
                dec.generate(1)
            timings["warmup_s"] = time.perf_counter() - t
            rss["after_warmup"] = sampler.rss()
            vram_m["after_warmup_process"] = vram.process_bytes(pid)

            n_seq = rs.kv.parallel
            par = _ParallelDecoder(dec, n_seq) if n_seq > 1 else None
            state = None
            if rs.depth > 0:
                dec.clear()
                t = time.perf_counter()
                if par is None:
                    dec.prompt(rs.depth)
                    size = L.llama_state_seq_get_size(c.ctx, 0)
                    state = (L.ctypes.c_uint8 * size)()
                    L.llama_state_seq_get_data(c.ctx, state, size, 0)
                else:  # every sequence at the depth: the whole context's state
                    par.clear()
                    par.prompt(rs.depth)
                    size = L.llama_state_get_size(c.ctx)
                    state = (L.ctypes.c_uint8 * size)()
                    L.llama_state_get_data(c.ctx, state, size)
                timings["depth_fill_s"] = time.perf_counter() - t

            def reset() -> None:
                if par is None:
                    dec.clear()
                    if state is not None and L.llama_state_seq_set_data(c.ctx, state, len(state), 0) == 0:
                        dec.prompt(rs.depth)  # state rejected: rebuild the depth, as llama-bench does
                    return
                par.clear()
                if state is not None:
                    L.llama_state_set_data(c.ctx, state, len(state))
                    par.pos = [rs.depth] * n_seq

            def timed_pp() -> float:
                if par is not None:
                    return par.prompt(rs.n_prompt)
                t = time.perf_counter()
                dec.prompt(rs.n_prompt)
                return time.perf_counter() - t

            def timed_tg() -> float:
                if par is not None:
                    return par.generate(rs.n_gen)
                t = time.perf_counter()
                dec.generate(rs.n_gen)
                return time.perf_counter() - t

            pp_s, tg_s, pp_noise, tg_noise = [], [], [], []
            for n_tokens, timed, samples, noise in ((rs.n_prompt, timed_pp, pp_s, pp_noise),
                                                    (rs.n_gen, timed_tg, tg_s, tg_noise)):
                while n_tokens > 0 and more(rs.repetitions, samples, n_tokens * n_seq):
                    reset()
                    before = machine()
                    with sampler.paused():  # no RSS wake-ups while ggml's threads are timed (memory.py)
                        samples.append(timed())
                    noise.append(noise_sample(before, machine()))
            vram_m["after_run_process"] = vram.process_bytes(pid)  # NVML has no per-process peak
            resolved = {
                "n_ctx": c.n_ctx,
                "n_ctx_seq": c.n_ctx_seq,
                "n_seq_max": c.n_seq_max,
                "n_batch": L.llama_n_batch(c.ctx),
                "n_ubatch": L.llama_n_ubatch(c.ctx),
                "flash_attn": c.log.flash_attn_resolved,
                "swa_full": rs.kv.swa_full,
                "kv_unified": rs.kv.kv_unified,
                "type_k": next((lc.type_k for lc in c.log.caches if lc.kind == "kv"), None),
                "type_v": next((lc.type_v for lc in c.log.caches if lc.kind == "kv"), None),
            }
            log_text += capture.take()
            lm.free_context(c)
            lm.close()
    finally:
        if log_path is not None:
            files.write_file(log_path, log_text + capture.take())
    rss["peak"] = sampler.peak
    rss["peak_rusage"] = peak_rss_rusage()
    rss["n_samples"] = sampler.n_samples
    timings["total_s"] = time.perf_counter() - t_all
    return {
        "resolved": resolved,
        "measured": {
            "kv": {"caches": [asdict(x) for x in c.log.caches]},
            "compute_buffers_mib": c.log.compute_buffers_mib,
            "model_buffers_mib": lm.load_log.model_buffers_mib,
            "devices": devices,
            "rss": rss,
            "vram": vram_m if vram.available else None,
            "pp": speed_test(rs.n_prompt, pp_s, rs.kv.parallel, pp_noise),
            "tg": speed_test(rs.n_gen, tg_s, rs.kv.parallel, tg_noise),
            "ttft_ms": statistics.fmean(pp_s) * 1000 if pp_s else None,
            "timings": timings,
        },
        "env": env,
    }


def handle(request: dict) -> dict:
    """One configuration: ``{"model_path", "settings", "log_path"}`` -> its measurements."""
    log = request.get("log_path")
    return measure(request["model_path"], RunSettings.from_dict(request["settings"]), Path(log) if log else None)


if __name__ == "__main__":
    sys.exit(serve(handle))
