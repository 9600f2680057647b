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
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 1
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"results schema version {version} is not supported (this ggufprof reads {SCHEMA_VERSION})")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


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


def speed_block(n_tokens: int, samples_s: list[float], samples_tps: list[float]) -> dict:
    """``measured.pp`` / ``measured.tg``: raw samples per repetition, their mean and stddev."""
    return {
        "n_tokens": n_tokens,
        "samples_s": samples_s,
        "samples_tps": samples_tps,
        "tps_mean": statistics.fmean(samples_tps) if samples_tps else None,
        "tps_stddev": statistics.stdev(samples_tps) if len(samples_tps) > 1 else 0.0,
    }


def append_record(path: Path, rec: Record) -> None:
    """Append one line and flush it to disk at once, so a crash loses nothing already measured."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec.to_dict(), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def iter_records(path: Path) -> Iterator[Record]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield Record.from_dict(json.loads(line))
                except (json.JSONDecodeError, ValueError, TypeError) as e:
                    raise ValueError(f"{path}:{n}: {e}") from None


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
