"""What the KV cache buys: generation with it against recomputing the prefix for every token (pure).

``ggufprof speedup`` writes one record per run into ``speedup.jsonl`` (beside a sweep's
``results.jsonl`` when both go to one directory); ``ggufprof report`` draws it. A record holds, per
number of generated tokens n, two timed modes of the same n tokens:

* ``cached``: one ``llama_decode`` of one token per step, the KV cache keeping the prefix;
* ``uncached``: every step clears the memory and decodes the whole prefix (position + 1 tokens),
  what an implementation without a cache does.

Each mode has its raw samples (seconds per repetition), the mean time per token at each position,
and the tokens llama.cpp evaluated at each step (its own counters, ``llama_perf_context``): 1 with
the cache, position + 1 without. The work counts are checked against that rule
(:func:`work_mismatches`); timings never are.

Format history (``schema_version``): 1 first version.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import GgufprofError
from .store import append_line, read_jsonl

SPEEDUP = "speedup.jsonl"
SCHEMA_VERSION = 1
MODES = ("cached", "uncached")


def expected_work(mode: str, n: int) -> list[int]:
    """Tokens evaluated per step: 1 with the cache, position + 1 without (the whole prefix again)."""
    return [1] * n if mode == "cached" else list(range(1, n + 1))


@dataclass
class SpeedupRecord:
    model: dict
    settings: dict  # n_gen, threads, repetitions, repack, ctx_size, batch_size, ubatch_size, cache types
    points: list[dict]  # per n: {"n", "cached": block, "uncached": block}
    resolved: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    started_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpeedupRecord":
        """A record from its JSON; ValueError saying what is wrong with it."""
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"speedup schema version {d.get('schema_version')!r} is not supported "
                             f"(this ggufprof reads {SCHEMA_VERSION})")
        for key, typ in (("model", dict), ("settings", dict), ("points", list)):
            if not isinstance(d.get(key), typ):
                raise ValueError(f"{key}: expected {typ.__name__}")
        for p in d["points"]:
            _check_point(p)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def host(self) -> str:
        return str(self.env.get("hostname") or "?")


def _check_point(p: object) -> None:
    if not isinstance(p, dict) or not isinstance(p.get("n"), int) or p["n"] < 1:
        raise ValueError("points: each needs an integer n >= 1")
    for mode in MODES:
        block = p.get(mode)
        if not isinstance(block, dict):
            raise ValueError(f"points n={p['n']}: {mode} missing")
        for key in ("per_token_s", "tokens_evaluated"):
            values = block.get(key)
            if not isinstance(values, list) or len(values) != p["n"] or \
                    not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
                raise ValueError(f"points n={p['n']}: {mode}.{key} must hold {p['n']} numbers")
        if not isinstance(block.get("samples_s"), list) or not block["samples_s"]:
            raise ValueError(f"points n={p['n']}: {mode}.samples_s is empty")


def mean_total_s(point: dict, mode: str) -> float:
    """Mean seconds for the n tokens over the repetitions."""
    return statistics.fmean(point[mode]["samples_s"])


def speedup(point: dict) -> float | None:
    """How many times faster the n tokens are with the cache than without (mean over repetitions)."""
    cached = mean_total_s(point, "cached")
    return mean_total_s(point, "uncached") / cached if cached > 0 else None


def work_mismatches(points: list[dict]) -> list[str]:
    """Steps where llama.cpp evaluated other than 1 token with the cache, position + 1 without."""
    out = []
    for p in points:
        for mode in MODES:
            got, want = p[mode]["tokens_evaluated"], expected_work(mode, p["n"])
            bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
            if bad or len(got) != len(want):
                i = bad[0] if bad else min(len(got), len(want))
                out.append(f"n={p['n']} {mode}: step {i} evaluated {got[i] if i < len(got) else 'nothing'}, "
                           f"expected {want[i] if i < len(want) else 'no step'}")
    return out


def speedup_file(path: str | Path) -> Path:
    p = Path(path)
    return p / SPEEDUP if p.is_dir() else p


def read_speedup(path: str | Path, problems: list[str] | None = None) -> list[SpeedupRecord]:
    """The records of a directory's speedup.jsonl (or of that file); [] when there is none. Lines that
    are not records are described in ``problems`` and skipped."""
    f = speedup_file(path)
    if not f.is_file():
        return []
    return read_jsonl(f, SpeedupRecord.from_dict, problems)


def append_speedup(out_dir: Path, rec: SpeedupRecord) -> Path:
    """Append one record to ``out_dir/speedup.jsonl`` (one whole line, fsync'd)."""
    path = out_dir / SPEEDUP
    if path.is_symlink():
        raise GgufprofError(f"{path}: a link; ggufprof writes its results only to files it creates")
    append_line(path, (json.dumps(rec.to_dict(), sort_keys=True, allow_nan=False) + "\n").encode("utf-8"))
    return path
