"""Versioned result records: one JSON object per measured configuration, one line in results.jsonl.

A record explains itself: the settings that were asked for, the settings llama.cpp resolved, the
prediction, the raw measurements (every repetition's sample), the verdicts, and the environment.
Reports and comparisons read these files and never re-measure.

Format history (SCHEMA_VERSION):
  1  first version: schema_version, id, status (ok/skipped/failed), reason, model, settings,
     resolved, predicted, measured (kv, compute/model buffers, rss, vram, pp, tg, ttft_ms,
     timings), check (kv_exact, kv_mismatches, rss_*), env, started_at.
     Records imported from llama-bench (env.source == "llama-bench") are ok with measured.pp/tg
     only: no kv, rss or check.* (llama-bench does not measure them).
  2  adds ``quality`` (None when not measured): the cache type's quality against f16/f16 from
     ``sweep --quality`` (results/quality.py, QualityResult.to_dict()), or {"error": reason} when
     that measurement failed. Version-1 records load as version 2 with ``quality`` None.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # older versions are upgraded on load
STATUSES = ("ok", "skipped", "failed")


@dataclass
class Record:
    id: str
    status: str
    settings: dict
    model: dict = field(default_factory=dict)
    reason: str | None = None
    resolved: dict = field(default_factory=dict)
    predicted: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    started_at: str | None = None
    schema_version: int = SCHEMA_VERSION
    quality: dict | None = None  # version 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        version = d.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"results schema version {version} is not supported (this ggufprof reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))})")
        known = {f for f in cls.__dataclass_fields__}
        # version 1 -> 2: no quality block; the record is upgraded, so a rewrite writes version 2
        return cls(**{**{k: v for k, v in d.items() if k in known}, "schema_version": SCHEMA_VERSION})


def validate(d: dict) -> list[str]:
    """Problems with one record dict; empty when it follows the schema (used by tests and loaders)."""
    problems = []
    for key, typ in (("schema_version", int), ("id", str), ("status", str), ("settings", dict), ("model", dict),
                     ("resolved", dict), ("predicted", dict), ("measured", dict), ("check", dict), ("env", dict)):
        if not isinstance(d.get(key), typ):
            problems.append(f"{key}: expected {typ.__name__}, got {type(d.get(key)).__name__}")
    if d.get("status") not in STATUSES:
        problems.append(f"status: {d.get('status')!r} is not one of {STATUSES}")
    if d.get("status") in ("skipped", "failed") and not d.get("reason"):
        problems.append("reason: required when status is skipped or failed")
    problems += _typed_fields(d)
    problems += _quality_problems(d.get("quality"))
    if d.get("status") == "ok":
        m = d.get("measured", {})
        # llama-bench measures speed only: an imported record (env.source "llama-bench") has no KV,
        # RSS or checks to carry (see llama_bench_io.py)
        speed_only = isinstance(d.get("env"), dict) and d["env"].get("source") == "llama-bench"
        for key in ("pp", "tg") if speed_only else ("kv", "rss", "pp", "tg"):
            if key not in m:
                problems.append(f"measured.{key}: missing in an ok record")
        for key in () if speed_only else ("kv_exact", "kv_mismatches"):
            if key not in d.get("check", {}):
                problems.append(f"check.{key}: missing in an ok record")
    return problems


QUALITY_NUMBERS = ("kld_mean", "kld_p99", "top1_agreement", "ppl", "ppl_base")


def _quality_problems(q: object) -> list[str]:
    """The version-2 ``quality`` block: absent/None, {"error": reason}, or a measured result."""
    if q is None:
        return []
    if not isinstance(q, dict):
        return [f"quality: expected an object or null, got {type(q).__name__}"]
    if "error" in q:
        return [] if isinstance(q["error"], str) else ["quality.error: expected a string"]
    bad = [k for k in ("cache_type_k", "cache_type_v") if not isinstance(q.get(k), str)]
    bad += [k for k in QUALITY_NUMBERS if not _finite(q.get(k))]
    return [f"quality.{k}: missing or of the wrong type" for k in bad]


# Fields readers compute with: a record whose values have other types is refused, not half-read.
_SETTING_TYPES = {"ctx_size": int, "parallel": int, "batch_size": int, "ubatch_size": int, "depth": int,
                  "n_prompt": int, "n_gen": int, "repetitions": int, "threads": int, "n_gpu_layers": int,
                  "kv_unified": bool, "swa_full": bool, "offload_kqv": bool, "repack": bool,
                  "cache_type_k": str, "cache_type_v": str, "flash_attn": str}


def _is(value: object, typ: type) -> bool:
    return isinstance(value, typ) and (typ is bool or not isinstance(value, bool))


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _typed_fields(d: dict) -> list[str]:
    problems = []
    settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
    for key, typ in _SETTING_TYPES.items():
        if key in settings and not _is(settings[key], typ):
            problems.append(f"settings.{key}: expected {typ.__name__}, got {settings[key]!r:.40}")
    predicted = d.get("predicted") if isinstance(d.get("predicted"), dict) else {}
    for key in ("kv_bytes", "recurrent_bytes", "total_bytes", "n_ctx", "n_ctx_seq"):
        if key in predicted and not _is(predicted[key], int):
            problems.append(f"predicted.{key}: expected int, got {predicted[key]!r:.40}")
    measured = d.get("measured") if isinstance(d.get("measured"), dict) else {}
    for test in ("pp", "tg"):
        block = measured.get(test)
        if block is None:
            continue
        if not isinstance(block, dict):
            problems.append(f"measured.{test}: expected an object")
            continue
        for key in ("samples_tps", "samples_s"):
            xs = block.get(key, [])
            if not isinstance(xs, list) or not all(_finite(x) for x in xs):
                problems.append(f"measured.{test}.{key}: expected a list of finite numbers")
    return problems


def speed_block(n_tokens: int, samples_s: list[float], samples_tps: list[float]) -> dict:
    """``measured.pp`` / ``measured.tg``: raw samples per repetition, their mean and stddev."""
    return {
        "n_tokens": n_tokens,
        "samples_s": samples_s,
        "samples_tps": samples_tps,
        "tps_mean": statistics.fmean(samples_tps) if samples_tps else None,
        "tps_stddev": statistics.stdev(samples_tps) if len(samples_tps) > 1 else 0.0,
    }


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts to dotted columns for CSV; lists become JSON strings (raw samples stay intact)."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def build_name(env: dict) -> str:
    """A record's build in words: 'ggml 0.25.3 (0c1e570-dirty) from DIR'; 'unknown' for old records."""
    b = env.get("llama_build") or {}
    if not b:
        return "unknown (recorded before ggufprof named builds)"
    return f"ggml {b.get('ggml_version')} ({b.get('ggml_commit')}) from {b.get('lib_dir')}"
