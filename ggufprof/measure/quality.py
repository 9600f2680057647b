"""The parent side of the quality worker (measure/quality.py): spawn it, read its result back.

As for the sweep's worker, the caller never loads the model: the worker runs in its own process
(measure/workers.py), so llama.cpp's memory and a crash stay out of the CLI and the sweep.
``sweep_quality`` measures a sweep's cache types once per group of settings that change the
numbers (flash attention, GPU layers, KV offload) and hands back one quality block per
configuration; the records get it as they are written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import GgufprofError
from ..flags import placement_args
from ..results.quality import QualitySettings
from ..results.run_settings import RunSettings
from .workers import Progress, run_once

MODULE = "quality_worker"


class QualityFailed(GgufprofError):
    """The quality worker crashed, was killed or timed out (not a refusal of the input)."""


def run_quality(model_path: Path, settings: QualitySettings, timeout: float | None = None,
                log_path: Path | None = None, progress: Progress | None = None) -> dict:
    """The worker's result: {"results": [QualityResult dicts], "text", "n_ctx", "n_chunks", "timings", "env"};
    ``progress`` hears of each chunk (done, total, what).

    GgufprofError for input llama.cpp or the rules refuse (a text too short, a context refused);
    QualityFailed when the worker died."""
    reply = run_once(MODULE, {"model_path": str(model_path), "settings": settings.to_dict(),
                              "log_path": str(log_path) if log_path else None}, timeout, sigill_hint=settings.repack,
                     on_progress=progress)
    if reply.ok:
        return reply.result
    if reply.refused:
        raise GgufprofError(reply.failure)
    raise QualityFailed(f"the quality worker failed: {reply.failure}")


def quality_key(rs: RunSettings) -> tuple:
    """What a configuration's quality depends on besides its cache types (llama-perplexity's
    settings for the rest: one sequence, n_ubatch 512): flash attention, the placement (which
    backend computes each layer: -ngl, --rpc, -ot, ...) and KV offload."""
    return rs.kv.flash_attn, rs.placement, rs.offload_kqv, rs.kv.cache_type_k, rs.kv.cache_type_v


def sweep_quality(model_path: Path, plan: list[tuple[RunSettings, str | None]], base: QualitySettings,
                  timeout: float | None, log_dir: Path | None = None) -> dict[tuple, dict]:
    """One quality run per group of (flash attention, placement, KV offload) among the configurations
    not skipped; {quality_key(rs): block}. A group whose run fails gets {"error": reason} blocks."""
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for rs, why in plan:
        if why is None:
            pairs = groups.setdefault(quality_key(rs)[:3], [])
            if (rs.kv.cache_type_k, rs.kv.cache_type_v) not in pairs:
                pairs.append((rs.kv.cache_type_k, rs.kv.cache_type_v))
    out: dict[tuple, dict] = {}
    for n, (group, pairs) in enumerate(groups.items()):
        fa, placement, offload = group
        settings = dataclasses.replace(base, cache_types=tuple(pairs), flash_attn=fa, placement=placement,
                                       offload_kqv=offload)
        log = log_dir / f"quality-{n:02d}.log" if log_dir else None
        try:
            for q in run_quality(model_path, settings, timeout, log)["results"]:
                out[group + (q["cache_type_k"], q["cache_type_v"])] = q
        except GgufprofError as e:
            for p in pairs:
                out[group + p] = {"error": str(e)}
    return out


def quality_failures(blocks: dict[tuple, dict]) -> list[str]:
    """One line per group of :func:`sweep_quality` whose run failed: its cache types, its settings and
    why (the error on one line). The records of the group carry the error too, but a sweep must not
    exit 0 with it hidden there."""
    groups: dict[tuple, tuple[list[str], str]] = {}
    for key, block in blocks.items():
        if "error" in block:
            pairs, _ = groups.setdefault(key[:3], ([], block["error"]))
            pairs.append(f"{key[3]}/{key[4]}")
    return [f"quality not measured for {', '.join(pairs)} (flash attention {fa}, {placement.n_gpu_layers} GPU layers"
            f"{''.join(' ' + a for a in placement_args(placement))}, KV offload "
            f"{'on' if offload else 'off'}): {' '.join(str(error).split())}"
            for (fa, placement, offload), (pairs, error) in groups.items()]
