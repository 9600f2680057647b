"""Run ONE configuration in this process and write its measurements as JSON.

    python -m ggufprof.measure.worker CONFIG.json RESULT.json LOG.txt

The runner starts one worker process per configuration, so the RSS is attributable to that
configuration alone and a crash or abort inside llama.cpp costs one configuration, not the sweep.
The timing follows llama-bench (tools/llama-bench/llama-bench.cpp): a warm-up prompt run and one
generated token; then per repetition the cache is cleared, the depth restored from a saved state,
and ``n_prompt`` tokens (in ``n_batch`` chunks) or ``n_gen`` single tokens are timed, each with a
final ``llama_synchronize``. Tokens are random ids (seeded), as in llama-bench.

Test hook: GGUFPROF_WORKER_ABORT=<substring of the config id> makes the worker abort() right after
creating the context, to prove a crash costs one configuration only.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import llama_cpp as L

from ..errors import GgufprofError
from .grid import RunSettings
from ..results.schema import speed_block
from .llama_ctx import ContextRefused, LlamaModel, log_capture
from .memory import RssSampler, Vram, peak_rss_rusage
from . import environment

EXIT_REFUSED = 3  # llama.cpp refused the model or context: a clean, explained failure


class _Decoder:
    def __init__(self, ctx, model, n_batch: int, seed: int = 1234):
        self.ctx = ctx
        vocab = L.llama_model_get_vocab(model)
        self.n_vocab = L.llama_vocab_n_tokens(vocab)
        self.bos = L.llama_vocab_bos(vocab) if L.llama_vocab_get_add_bos(vocab) else None
        self.n_batch = n_batch
        self.rng = random.Random(seed)
        self.mem = L.llama_get_memory(ctx)

    def _decode(self, batch) -> None:
        rc = L.llama_decode(self.ctx, batch)
        if rc != 0:
            raise GgufprofError(f"llama_decode returned {rc}")

    def prompt(self, n: int) -> None:
        buf = (L.llama_token * self.n_batch)()  # one buffer for every chunk; the batch points into it
        done = 0
        while done < n:
            k = min(self.n_batch, n - done)
            for i in range(k):
                buf[i] = self.rng.randrange(self.n_vocab)
            if done == 0 and self.bos is not None:
                buf[0] = self.bos
            self._decode(L.llama_batch_get_one(buf, k))
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


def _speed(n_tokens: int, samples_s: list[float]) -> dict:
    return speed_block(n_tokens, samples_s, [n_tokens / s for s in samples_s if s > 0])


def measure(model_path: str, rs: RunSettings, log_path: Path | None = None) -> dict:
    capture = log_capture()
    sampler = RssSampler()
    vram = Vram()
    pid = os.getpid()
    rss = {"baseline": sampler.rss()}
    vram_m = {"baseline_process": vram.process_bytes(pid), "baseline_devices": vram.device_used()}
    env = environment.collect(L, vram.info(), vram.reason)
    timings: dict[str, float] = {}
    log_text = ""
    t_all = time.perf_counter()
    try:
        with sampler:
            t = time.perf_counter()
            try:
                lm = LlamaModel(model_path, rs.n_gpu_layers, rs.repack)
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

            state = None
            if rs.depth > 0:
                dec.clear()
                t = time.perf_counter()
                dec.prompt(rs.depth)
                timings["depth_fill_s"] = time.perf_counter() - t
                size = L.llama_state_seq_get_size(c.ctx, 0)
                state = (L.ctypes.c_uint8 * size)()
                L.llama_state_seq_get_data(c.ctx, state, size, 0)

            def reset() -> None:
                dec.clear()
                if state is not None and L.llama_state_seq_set_data(c.ctx, state, len(state), 0) == 0:
                    dec.prompt(rs.depth)  # state rejected: rebuild the depth, as llama-bench does

            pp_s, tg_s = [], []
            for _ in range(rs.repetitions if rs.n_prompt > 0 else 0):
                reset()
                t = time.perf_counter()
                dec.prompt(rs.n_prompt)
                pp_s.append(time.perf_counter() - t)
            for _ in range(rs.repetitions if rs.n_gen > 0 else 0):
                reset()
                t = time.perf_counter()
                dec.generate(rs.n_gen)
                tg_s.append(time.perf_counter() - t)
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
            log_path.write_text(log_text + capture.take())
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
            "rss": rss,
            "vram": vram_m if vram.available else None,
            "pp": _speed(rs.n_prompt, pp_s),
            "tg": _speed(rs.n_gen, tg_s),
            "ttft_ms": statistics.fmean(pp_s) * 1000 if pp_s else None,
            "timings": timings,
        },
        "env": env,
    }


def main(argv: list[str]) -> int:
    cfg_path, out_path = Path(argv[0]), Path(argv[1])
    log_path = Path(argv[2]) if len(argv) > 2 else None
    cfg = json.loads(cfg_path.read_text())
    rs = RunSettings.from_dict(cfg["settings"])
    try:
        result = measure(cfg["model_path"], rs, log_path)
    except GgufprofError as e:
        out_path.write_text(json.dumps({"error": str(e)}))
        return EXIT_REFUSED
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
