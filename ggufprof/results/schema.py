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
  Settings added since, without a new version (a record that lacks one ran at its default, which
  RunSettings.from_dict gives it): ``repack``; the placement flags ``split_mode``, ``tensor_split``,
  ``main_gpu``, ``devices``, ``rpc``, ``overrides``, ``cpu_moe``, ``n_cpu_moe``, ``n_cpu_ffn``,
  ``load_mode`` (-lm), ``no_host``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..memory.placement import LOAD_MODES, SPLIT_MODES

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # older versions are upgraded on load
STATUSES = ("ok", "skipped", "failed")


@dataclass(slots=True)  # slots: 100,000 records in memory, each without a __dict__
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


# --- validation: every field a reader uses, and what it must hold ---------------------------------------
#
# One validation for every reader (results, report, compare, export, sweep --resume / --recheck): a
# record whose fields have other shapes than these is skipped with the file, the line and the field,
# never half-read. Why so strict: readers compute with these values (ratios, sums, statistical tests,
# f-strings), and a gate must not end in a traceback (exit 1, "regression") because one line of a
# results file was edited, truncated or written by something else. Fields not listed here are kept
# and never read. Numbers are finite (the parser refuses NaN, Infinity and overflowing literals);
# speed samples are positive (a ratio or a test against a zero baseline has no meaning).

@dataclass(frozen=True)
class Kind:
    """What a leaf field holds: a value of one of ``types`` (exactly: True is not an int), within
    ``lo``..``hi`` when given (NaN never is), passing ``test`` when given; ``name`` is said in the
    problem. ``null``: None is allowed (not measured, not known)."""

    name: str
    types: tuple[type, ...]
    lo: float | None = None
    hi: float | None = None
    test: Callable[[object], bool] | None = None
    null: bool = True

    def ok(self, v: object) -> bool:
        return (type(v) in self.types and (self.lo is None or self.lo <= v <= self.hi)  # type: ignore[operator]
                and (self.test is None or self.test(v)))

    def not_null(self) -> "Kind":
        return dataclasses.replace(self, null=False)


@dataclass(frozen=True)
class Block:
    """An object of known fields (others are not read); ``null``: the whole block may be None."""

    fields: dict
    null: bool = False


@dataclass(frozen=True)
class ListOf:
    """A list of ``item``s (never of nulls)."""

    item: "Kind | Block"
    null: bool = False


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are names (devices, tests) and whose values are all ``value`` (not null)."""

    value: "Kind | ListOf"
    null: bool = False


MAX_INT = (1 << 63) - 1  # byte counts, token counts: what JSON consumers and numpy hold
MAX_NUMBER = 1e300  # finite, with room to compute (a mean, a ratio) without overflowing
MAX_RATE = 1e12  # tokens/s
MAX_SECONDS = 1e7
ABOVE_0 = math.ulp(0.0)  # the smallest positive float: "lo=ABOVE_0" is "> 0"
_MIB = re.compile(r"\d{1,15}(\.\d{1,9})?")  # llama.cpp prints sizes as %.2f MiB


def _iso_time(x: object) -> bool:
    try:
        dt.datetime.fromisoformat(x)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


NUMBERS = (int, float)
STR = Kind("a string", (str,))


def one_of(values: tuple[str, ...]) -> Kind:
    """A string llama.cpp's flag takes (-sm, -lm): a value no run could have is a record not to read."""
    return Kind(f"one of {', '.join(values)}", (str,), test=lambda v: v in values, null=False)
BOOL = Kind("true or false", (bool,))
COUNT = Kind("a whole number >= 0", (int,), 0, MAX_INT)
INT = Kind("a whole number", (int,), -MAX_INT, MAX_INT)
NUMBER = Kind("a finite number", NUMBERS, -MAX_NUMBER, MAX_NUMBER)
NON_NEGATIVE = Kind("a finite number >= 0", NUMBERS, 0, MAX_NUMBER)
RATE = Kind(f"a number of tokens/s above 0 (at most {MAX_RATE:g})", NUMBERS, ABOVE_0, MAX_RATE, null=False)
SECONDS = Kind(f"a number of seconds above 0 (at most {MAX_SECONDS:g})", NUMBERS, ABOVE_0, MAX_SECONDS, null=False)
MIB = Kind("a size in MiB as llama.cpp prints it ('12.50')", (str,), test=lambda v: bool(_MIB.fullmatch(v)))
TIME = Kind("an ISO 8601 time", (str,), test=_iso_time)
FLASH_ATTN = Kind("on, off or auto", (str,), test=lambda v: v in ("on", "off", "auto"), null=False)


# A record's settings: RunSettings.to_dict() (results/run_settings.py). No other key is allowed
# (RunSettings.from_dict, which --recheck and export use, would refuse it), and those readers index
# (plots, describe, --recheck) must be there (SETTINGS_REQUIRED).
SETTINGS = {
    "ctx_size": COUNT.not_null(), "cache_type_k": STR.not_null(), "cache_type_v": STR.not_null(),
    "parallel": COUNT.not_null(), "kv_unified": BOOL.not_null(), "swa_full": BOOL.not_null(),
    "batch_size": COUNT.not_null(), "ubatch_size": COUNT.not_null(), "flash_attn": FLASH_ATTN,
    "threads": COUNT.not_null(), "n_prompt": COUNT.not_null(), "n_gen": COUNT.not_null(), "depth": COUNT.not_null(),
    "repetitions": COUNT.not_null(), "n_gpu_layers": INT.not_null(), "offload_kqv": BOOL.not_null(),
    "repack": BOOL.not_null(),
    # the other placement flags (memory/placement.py PlacementFlags.to_dict); absent in older records:
    # llama.cpp's default placement, which every sweep ran at before they were settings
    "split_mode": one_of(SPLIT_MODES), "tensor_split": ListOf(NON_NEGATIVE), "main_gpu": INT.not_null(),
    "devices": ListOf(STR), "rpc": ListOf(STR), "cpu_moe": BOOL.not_null(), "n_cpu_moe": COUNT.not_null(),
    "n_cpu_ffn": COUNT.not_null(), "load_mode": one_of(("auto", *LOAD_MODES)), "no_host": BOOL.not_null(),
    "overrides": ListOf(Kind("a [tensor name regex, buffer type] pair", (list,),
                             test=lambda v: len(v) == 2 and all(type(x) is str for x in v))),
}
# version-1 records may lack the newer ones (RunSettings.from_dict gives them their defaults)
SETTINGS_REQUIRED = ("ctx_size", "cache_type_k", "cache_type_v", "parallel", "kv_unified", "swa_full", "batch_size",
                     "ubatch_size", "flash_attn", "threads", "n_prompt", "n_gen", "depth", "repetitions")

SPEED = Block({"samples_tps": ListOf(RATE), "samples_s": ListOf(SECONDS), "tps_mean": NON_NEGATIVE,
               "tps_stddev": NON_NEGATIVE, "n_seq": COUNT,
               "samples_noise": ListOf(Block({"others_cpu_share": NUMBER}))})

# The checks a measured record carries (results/checks.py), each True (agrees), False (disagrees) or
# None/absent (not judged: no prediction for this memory, no GPU, ...).
CHECK_KEYS = ("kv_exact", "rss_explained", "vram_explained", "weights_gpu_exact", "weights_repack_exact",
              "weights_host_exact", "total_within_prediction", "weights_resident_explained", "vram_total_explained")

RECORD = {
    "schema_version": INT.not_null(),
    "id": STR.not_null(),
    "status": Kind(f"one of {', '.join(STATUSES)}", (str,), test=lambda v: v in STATUSES, null=False),
    "reason": STR,
    "started_at": TIME,
    "settings": Block(SETTINGS),
    "model": Block({"path": STR, "name": STR, "architecture": STR, "sha256": STR, "size": COUNT,
                    "weight_bytes": COUNT, "n_params": COUNT}),
    "resolved": Block({"n_ctx": COUNT, "n_ctx_seq": COUNT}),
    "predicted": Block({"kv_bytes": COUNT, "recurrent_bytes": COUNT, "total_bytes": COUNT, "n_ctx": COUNT,
                        "n_ctx_seq": COUNT, "caches": ListOf(Block({}))}),
    "measured": Block({
        "kv": Block({"caches": ListOf(Block({"kind": STR, "total_mib": MIB}))}),
        "rss": Block({k: COUNT for k in ("baseline", "after_load", "after_context", "after_warmup", "peak")}),
        "vram": Block({k: COUNT for k in ("after_init_process", "after_load_process", "after_context_process",
                                          "after_warmup_process")}, null=True),
        "pp": SPEED, "tg": SPEED, "log_file": STR}),
    "check": Block({**{k: BOOL for k in CHECK_KEYS}, "kv_mismatches": ListOf(STR), "rss_growth": INT,
                    "rss_expected": INT, "rss_tolerance": INT, "vram_growth": INT, "vram_expected": INT,
                    "speed_noisy": BOOL, "speed_noise": MapOf(ListOf(STR))}),
    "env": Block({"hostname": STR, "cpu": STR, "gpu_unavailable": STR, "llama_cpp_python": STR, "ggufprof": STR,
                  "llama_cpp_system_info": STR, "cpu_count_physical": COUNT, "cpu_count_logical": COUNT,
                  "memory_total": COUNT, "platform": STR, "python": STR, "source": STR, "build_commit": STR,
                  "build_number": INT, "backends": STR, "gpu_info": STR,
                  "gpu": Block({"gpus": ListOf(STR), "memory_total": ListOf(COUNT), "driver": STR, "cuda": STR},
                               null=True)}),
    # version 2: results/quality.py QualityResult.to_dict(), or {"error": reason}
    "quality": Block({"error": STR, "cache_type_k": STR, "cache_type_v": STR,
                      **{k: NUMBER for k in ("kld_mean", "kld_mean_unc", "kld_median", "kld_p90", "kld_p99",
                                             "kld_p999", "kld_max", "kld_min", "top1_agreement",
                                             "top1_agreement_unc", "ppl", "ppl_base", "delta_ppl")},
                      "n_ctx": COUNT, "n_chunks": COUNT, "n_scored": COUNT, "text": Block({"sha256": STR}),
                      "by_position": ListOf(Block({"first": COUNT, "last": COUNT, "n": COUNT, "kld_mean": NUMBER,
                                                   "top1_agreement": NUMBER}))}, null=True),
}
QUALITY_NUMBERS = ("kld_mean", "kld_p99", "top1_agreement", "ppl", "ppl_base")


def validate(d: dict) -> list[str]:
    """Problems with one record dict, each naming its field; empty when every field a reader uses
    has the shape it must have (the loaders skip a record with problems, saying which)."""
    version = d.get("schema_version")
    if type(version) is int and version > SCHEMA_VERSION:
        return [f"schema_version {version}: written by a newer ggufprof (this one reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))})"]
    problems = [f"{k}: missing" for k in ("schema_version", "id", "status", "settings") if k not in d]
    if problems or not _RECORD_OK(d):  # the fast yes/no first; the walk that names the fields only then
        _check_block(d, RECORD, "", problems)
    if version not in READABLE_VERSIONS and not problems:
        problems.append(f"schema_version: {version} is not a version of the results schema")
    if problems:
        return problems
    problems += settings_problems(d["settings"])
    if d["status"] in ("skipped", "failed") and not d.get("reason"):
        problems.append("reason: required when status is skipped or failed")
    q = d.get("quality")
    if q is not None and "error" not in q:
        problems += [f"quality.{k}: missing" for k in ("cache_type_k", "cache_type_v", *QUALITY_NUMBERS)
                     if q.get(k) is None]
    if d["status"] == "ok":
        problems += _ok_requirements(d)
    for test in ("pp", "tg"):  # a repetition is one time and one rate (export pairs them)
        block = d.get("measured", {}).get(test) or {}
        if "samples_s" in block and len(block["samples_s"]) != len(block.get("samples_tps", ())):
            problems.append(f"measured.{test}.samples_s: {len(block['samples_s'])} times for "
                            f"{len(block.get('samples_tps', ()))} rates")
    return problems


def settings_problems(settings: dict) -> list[str]:
    """What is wrong with a record's settings beyond their types: a missing one, or one this
    ggufprof does not know (a newer ggufprof wrote it)."""
    return ([f"settings.{k}: missing" for k in SETTINGS_REQUIRED if k not in settings]
            + [f"settings.{k}: not a setting this ggufprof knows (schema version {SCHEMA_VERSION}; a newer "
               "ggufprof wrote it?)" for k in settings if k not in SETTINGS])


def field_problems(d: dict, fields: dict, prefix: str = "") -> list[str]:
    """Problems of ``d`` against a spec of fields (Kind, Block, ListOf, MapOf): each names the field,
    what it must hold and what it holds. For other formats read beside records (llama-bench lines)."""
    problems: list[str] = []
    _check_block(d, fields, prefix, problems)
    return problems


def _ok_requirements(d: dict) -> list[str]:
    """What a measured record must carry. llama-bench measures speed only: an imported record
    (env.source "llama-bench") has no KV, RSS or checks (see llama_bench_io.py)."""
    m, speed_only = d.get("measured", {}), d.get("env", {}).get("source") == "llama-bench"
    needed = ("pp", "tg") if speed_only else ("kv", "rss", "pp", "tg")
    out = [f"measured.{k}: missing in an ok record" for k in needed if m.get(k) is None]
    if not speed_only:
        out += [f"check.{k}: missing in an ok record" for k in ("kv_exact", "kv_mismatches")
                if k not in d.get("check", {})]
        rss = m.get("rss")
        out += [f"measured.rss.{k}: missing in an ok record" for k in ("after_load", "after_context")
                if isinstance(rss, dict) and rss.get(k) is None]
    return out


def _check_block(d: dict, fields: dict, prefix: str, problems: list[str]) -> None:
    for key, spec in fields.items():
        if key in d:
            _check(d[key], spec, prefix + key, problems)


def _check(v: object, spec: "Kind | Block | ListOf | MapOf", where: str, problems: list[str]) -> None:
    if v is None:
        if not spec.null:
            problems.append(f"{where}: null where {_describe(spec)} goes")
        return
    if isinstance(spec, Kind):
        if not spec.ok(v):
            problems.append(f"{where}: expected {spec.name}, got {_show(v)}")
    elif isinstance(spec, Block):
        if type(v) is not dict:
            problems.append(f"{where}: expected an object, got {_show(v)}")
        else:
            _check_block(v, spec.fields, where + ".", problems)
    elif type(v) is not (list if isinstance(spec, ListOf) else dict):
        problems.append(f"{where}: expected {_describe(spec)}, got {_show(v)}")
    else:  # a list or a map: its items are never null
        items = enumerate(v) if isinstance(spec, ListOf) else v.items()
        item = spec.item if isinstance(spec, ListOf) else spec.value
        for i, x in items:
            here = f"{where}[{i}]" if isinstance(spec, ListOf) else f"{where}.{i}"
            if x is None:
                problems.append(f"{here}: null where {_describe(item)} goes")
            else:
                _check(x, item, here, problems)


def _compile(fields: dict) -> Callable[[dict], bool]:
    """A yes/no test of an object's ``fields``, by the rules _check applies, as one generated
    function of inline comparisons (no call and no message per field): most records are
    well-formed, and a reader checks 100,000 of them (~5x faster than walking the spec; the two
    are tested to agree). ``print(_source(RECORD))`` shows the code."""
    names: dict = {}
    exec(_source(fields, names), names)  # noqa: S102 -- code generated from this module's own spec
    return names["ok"]


def _source(fields: dict, names: dict | None = None) -> str:
    lines = ["def ok(d):"]
    _emit_fields(fields, "d", lines, 1, {} if names is None else names)
    return "\n".join(lines + ["    return True"])


def _emit_fields(fields: dict, var: str, lines: list[str], depth: int, names: dict) -> None:
    pad, x = "    " * depth, f"x{depth}"
    for key, spec in fields.items():
        lines.append(f"{pad}{x} = {var}.get({key!r})")
        lines.append(f"{pad}if {x} is not None:")
        _emit_value(spec, x, lines, depth + 1, names)
        if not spec.null:
            lines.append(f"{pad}elif {key!r} in {var}: return False")


def _emit_value(spec: "Kind | Block | ListOf | MapOf", x: str, lines: list[str], depth: int, names: dict) -> None:
    """Code that returns False when the value in variable ``x`` (not None) is not of ``spec``."""
    pad = "    " * depth
    if isinstance(spec, Kind):
        n = len(names)
        names[f"T{n}"], names[f"F{n}"] = spec.types, spec.test
        bad = [f"type({x}) is not {spec.types[0].__name__}" if len(spec.types) == 1 else f"type({x}) not in T{n}"]
        if spec.lo is not None:
            bad.append(f"not {spec.lo!r} <= {x} <= {spec.hi!r}")
        if spec.test is not None:
            bad.append(f"not F{n}({x})")
        lines.append(f"{pad}if {' or '.join(bad)}: return False")
        return
    kind = "dict" if isinstance(spec, (Block, MapOf)) else "list"
    lines.append(f"{pad}if type({x}) is not {kind}: return False")
    if isinstance(spec, Block):
        _emit_fields(spec.fields, x, lines, depth, names)
        return
    item, y = (spec.item if isinstance(spec, ListOf) else spec.value), f"y{depth}"
    lines.append(f"{pad}for {y} in {x}{'.values()' if kind == 'dict' else ''}:")
    lines.append(f"{pad}    if {y} is None: return False")
    _emit_value(item, y, lines, depth + 1, names)


_RECORD_OK = _compile(RECORD)


def _describe(spec: "Kind | Block | ListOf | MapOf") -> str:
    if isinstance(spec, Kind):
        return spec.name
    if isinstance(spec, ListOf):
        return f"a list (of {_describe(spec.item)})"
    return "an object"


def _show(v: object) -> str:
    """A value in a problem: its type and the start of its text (a line may hold anything)."""
    text = json.dumps(v, default=str)
    return f"{type(v).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


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
