"""Records of one or more sweeps turned into comparison rows (plain dicts with raw numbers).

Why a separate layer: the HTML page, the Markdown file and the plots must show the same numbers,
so the choices live here once: which record is a configuration's f16/f16 baseline, how a record is
labelled by host, what counts as a check failure. Nothing re-measures; everything comes from
results.jsonl. Sweeps of the same model on several hosts merge; different models are refused,
because one comparison table over two models would put unrelated ratios side by side.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ...results.llama_log import logged_mib, mib_bytes
from ...results.run_settings import PLACEMENT_ID_KEYS
from ...results.noise import has_spread, record_caveats
from ...results.checks import failed_checks
from ...results.schema import CHECK_KEYS
from ...errors import GgufprofError
from ...results.store import RESULTS, load_records
from ...results.schema import Record
from ...results.speedup import SpeedupRecord, read_speedup

CACHE_KEYS = ("cache_type_k", "cache_type_v")
# settings shown as columns when they vary, in this order (ctx and depth are always shown)
# (the ones that shape the cache first, depth after them: rows differing only in depth sit together)
AXES = ("ctx_size", "parallel", "kv_unified", "swa_full", "flash_attn", "n_gpu_layers",
        *(k for k, _ in PLACEMENT_ID_KEYS), "offload_kqv", "batch_size",
        "ubatch_size", "depth", "threads", "n_prompt", "n_gen", "repetitions", "repack")
AXIS_LABELS = {"ctx_size": "ctx", "depth": "depth", "parallel": "np", "kv_unified": "unified",
               "swa_full": "swa_full", "flash_attn": "fa", "n_gpu_layers": "ngl", "offload_kqv": "kv offload",
               "threads": "threads", "batch_size": "b", "ubatch_size": "ub", "n_prompt": "pp tokens",
               "n_gen": "tg tokens", "repetitions": "reps", "repack": "repack",
               **dict(PLACEMENT_ID_KEYS)}  # the placement flags by llama.cpp's short names (-ts, -ot, -ncmoe, ...)
BASELINE = ("f16", "f16")
DASH = "—"  # a value a table has none of
# What the report reads of each record (store.read_lines keeps only these: 100,000 records fit)
REPORT_FIELDS = ("settings", "model", "env", "predicted.kv_bytes", "predicted.recurrent_bytes", "predicted.caches.kind",
                 "measured.kv.caches.kind", "measured.kv.caches.total_mib",
                 *(f"measured.rss.{k}" for k in ("after_load", "after_context", "peak")),
                 *(f"measured.vram.{k}" for k in ("after_load_process", "after_context_process")),
                 *(f"measured.{t}.{k}" for t in ("pp", "tg") for k in ("tps_mean", "tps_stddev", "samples_tps", "samples_noise")),
                 *(f"check.{k}" for k in (*CHECK_KEYS, "kv_mismatches", "rss_growth", "rss_expected", "rss_tolerance",
                                          "vram_growth", "vram_expected", "speed_noise")), "quality")


@dataclass
class Item:
    """One record and where it came from (the host label is what tables and plots show)."""

    rec: Record
    host: str
    source: Path

    @cached_property
    def pair(self) -> tuple[str, str]:
        return self.rec.settings.get("cache_type_k", "?"), self.rec.settings.get("cache_type_v", "?")


    @property
    def ok(self) -> bool:
        return self.rec.status == "ok"


@dataclass
class ReportData:
    model: dict
    sources: list[Path]
    items: list[Item]
    hosts: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # in the order the sweeps ran them
    varying: list[str] = field(default_factory=list)  # settings (not cache types) with more than one value
    problems: list[str] = field(default_factory=list)  # results lines that could not be read (skipped)
    speedup: list[SpeedupRecord] = field(default_factory=list)  # speedup.jsonl records, in the order read
    rows: list[dict] | None = field(default=None, repr=False)  # comparison_rows, once computed

    def count(self, status: str) -> int:
        return sum(i.rec.status == status for i in self.items)

    @cached_property
    def ok(self) -> list[Item]:
        """The measured configurations (items are fixed once loaded)."""
        return [i for i in self.items if i.ok]

    @property
    def shown_axes(self) -> list[str]:
        return [a for a in AXES if a in ("ctx_size", "depth") or a in self.varying]


def pair_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


def _model_key(model: dict) -> tuple:
    return (model.get("sha256"),) if model.get("sha256") else (model.get("name"), model.get("size"))


def _dir_host(path: Path, records: list[Record]) -> str:
    """The hostname of any ok record of the directory; its name when none has an environment."""
    for r in records:
        if r.env.get("hostname"):
            return r.env["hostname"]
    return path.resolve().name


def _load_dir(d: Path, problems: list[str]) -> tuple[list[Record], list[SpeedupRecord]]:
    """A directory's sweep records and speedup records; an error when it holds neither."""
    speed = read_speedup(d, problems)
    if speed and not (d / RESULTS).is_file():
        return [], speed
    recs = load_records(d, problems, REPORT_FIELDS)  # says what to run when there is no results.jsonl
    if not recs and not speed:
        raise GgufprofError(f"{d}: results.jsonl holds no records")
    return recs, speed


def load(dirs: list[Path]) -> ReportData:
    """All records of ``dirs`` (results.jsonl and speedup.jsonl), labelled by host; GgufprofError when
    they hold different models."""
    if not dirs:
        raise GgufprofError("no result directories given")
    problems: list[str] = []
    both = [(Path(d), *_load_dir(Path(d), problems)) for d in dirs]
    loaded = [(d, recs) for d, recs, _ in both]
    first: tuple[Path, dict] | None = None
    for d, recs, speed in both:
        for r in [*recs, *speed]:
            if first is None:
                first = (d, r.model)
            elif _model_key(r.model) != _model_key(first[1]):
                a, b = first[1], r.model
                raise GgufprofError(
                    f"different models: {a.get('name')} ({str(a.get('sha256'))[:12]}, {first[0]}) and "
                    f"{b.get('name')} ({str(b.get('sha256'))[:12]}, {d}); a report compares one model across "
                    "hosts: run `ggufprof report` once per model")
    labels = [_dir_host(d, recs) for d, recs in loaded]
    dirs_of: dict[str, set[Path]] = {}
    items: list[Item] = []
    for (d, recs), fallback in zip(loaded, labels):
        for r in recs:
            host = r.env.get("hostname") or fallback
            dirs_of.setdefault(host, set()).add(d)
            items.append(Item(r, host, d))
    for it in items:  # one host swept twice: tell the directories apart
        if len(dirs_of[it.host]) > 1:
            it.host = f"{it.host} ({it.source.resolve().name})"
    data = ReportData(model=first[1], sources=[d for d, _ in loaded], items=items, problems=problems,
                      speedup=[r for _, _, speed in both for r in speed])
    data.hosts = list(dict.fromkeys(i.host for i in items))
    data.pairs = list(dict.fromkeys(i.pair for i in items))
    # one setting's values are all of one type (schema.validate): a set tells them apart
    data.varying = [a for a in AXES if len({hashable(i.rec.settings.get(a)) for i in items}) > 1]
    return data


def other_settings(rec: Record) -> tuple:
    """Everything but the cache types: the key that finds a configuration's f16/f16 twin. (Names,
    values): the values themselves, not copies (a report holds one per configuration); one field's
    values are all of one type (schema.validate), so True never meets 1."""
    keys = tuple(sorted(k for k in rec.settings if k not in CACHE_KEYS))
    return keys, tuple(hashable(rec.settings[k]) for k in keys)


def hashable(v: object) -> object:
    """A setting as a dict key: the placement's lists (tensor_split, rpc, overrides) as tuples."""
    return tuple(map(hashable, v)) if isinstance(v, list) else v


def measured_kv_bytes(rec: Record, grows_with_context: bool = True) -> float | None:
    """Bytes llama.cpp logged for its KV caches (``grows_with_context=False``: the fixed-size
    recurrent / compressor state): MiB with two decimals, so within 0.005 MiB per cache."""
    mib = logged_mib(rec.measured.get("kv", {}).get("caches"), grows_with_context)
    return None if mib is None else float(mib_bytes(mib))


def rss_growth(rec: Record) -> int | None:
    rss = rec.measured.get("rss") or {}
    if rss.get("after_context") is None or rss.get("after_load") is None:
        return None
    return rss["after_context"] - rss["after_load"]


def vram_growth(rec: Record) -> int | None:
    v = rec.measured.get("vram") or {}
    if v.get("after_context_process") is None or v.get("after_load_process") is None:
        return None
    return v["after_context_process"] - v["after_load_process"]


def speed(rec: Record, test: str) -> tuple[float | None, float | None]:
    """(mean, stddev) tokens/s of the ``pp`` or ``tg`` test; (None, None) when it did not run; the
    stddev None when fewer than two repetitions measured no spread (shown "n/a", never "± 0")."""
    m = rec.measured.get(test) or {}
    return m.get("tps_mean"), m.get("tps_stddev") if has_spread(m) else None


def doubtful(rec: Record, test: str) -> bool:
    """Whether a measured speed is not to be trusted, by compare's rule (results/noise.py ``caveats``:
    noisy, or fewer than two repetitions), decided from the samples, not from a stored flag."""
    return speed(rec, test)[0] is not None and bool(record_caveats(rec, test))


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def sort_key(data: ReportData, it: Item) -> tuple:
    """Cache type innermost, so each f16 row sits right above the rows compared with it."""
    return tuple(_orderable(it.rec.settings.get(a)) for a in data.shown_axes), \
        data.hosts.index(it.host), data.pairs.index(it.pair)


def fmt_setting(v: object) -> str:
    """A setting as a table shows it: on/off, a dash for none, a placement list as llama.cpp writes
    it (``-ts 3,1``: 3,1; ``-ot``: exps=CPU,...)."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (list, tuple)):
        return ",".join("=".join(map(fmt_setting, x)) if isinstance(x, (list, tuple)) else fmt_setting(x)
                        for x in v) or DASH
    return DASH if v is None else str(v)


def _orderable(v: object) -> tuple:
    """Numbers in numeric order, anything else (None, strings) after them by its text."""
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, repr(v))


def comparison_rows(data: ReportData) -> list[dict]:
    """One row per measured configuration: memory and speed, each with its ratio to f16/f16."""
    if data.rows is None:
        data.rows = _comparison_rows(data)
    return data.rows


def _comparison_rows(data: ReportData) -> list[dict]:
    kv_base = {(i.host, other_settings(i.rec)): i.rec.predicted.get("kv_bytes")
               for i in data.items if i.pair == BASELINE}
    ok_base = {(i.host, other_settings(i.rec)): i.rec for i in data.ok if i.pair == BASELINE}
    rows = []
    for it in sorted(data.ok, key=lambda i: sort_key(data, i)):
        r, key = it.rec, (it.host, other_settings(it.rec))
        base = ok_base.get(key)
        pp, pp_sd = speed(r, "pp")
        tg, tg_sd = speed(r, "tg")
        noisy = [t for t in ("pp", "tg") if doubtful(r, t)]
        rows.append({
            "host": it.host, "pair": it.pair, "settings": {a: r.settings.get(a) for a in data.shown_axes},
            "kv_bytes": r.predicted.get("kv_bytes"), "kv_measured": measured_kv_bytes(r),
            "kv_ratio": _ratio(r.predicted.get("kv_bytes"), kv_base.get(key)),
            "rss_growth": rss_growth(r), "rss_peak": (r.measured.get("rss") or {}).get("peak"),
            "vram_growth": vram_growth(r),
            "pp": pp, "pp_sd": pp_sd, "pp_ratio": _ratio(pp, speed(base, "pp")[0] if base else None),
            "tg": tg, "tg_sd": tg_sd, "tg_ratio": _ratio(tg, speed(base, "tg")[0] if base else None),
            "noisy": noisy,  # tests whose samples results/noise.py does not trust
            # a ratio is trusted only when both its measurements are (compare's rule for a comparison)
            **{f"{t}_ratio_doubtful": t in noisy or (base is not None and doubtful(base, t)) for t in ("pp", "tg")},
            **quality_values(r),
        })
    return rows


def quality_block(rec: Record) -> dict | None:
    """The record's measured quality against f16/f16 (sweep --quality); None when absent or failed."""
    q = rec.quality
    return q if isinstance(q, dict) and "kld_mean" in q else None


def quality_values(rec: Record) -> dict:
    q = quality_block(rec) or {}
    return {"kld": q.get("kld_mean"), "kld_p99": q.get("kld_p99"), "top1": q.get("top1_agreement"),
            "dppl": q.get("delta_ppl")}


def quality_by_pair(data: ReportData) -> dict[tuple[str, str], dict]:
    """Per cache type pair, its measured quality block; the worst (largest mean KLD) when hosts or
    settings measured it differently, so a recommendation never rests on the best run."""
    out: dict[tuple[str, str], dict] = {}
    for it in data.ok:
        q = quality_block(it.rec)
        if q is not None and (it.pair not in out or q["kld_mean"] > out[it.pair]["kld_mean"]):
            out[it.pair] = q
    return out


def quality_errors(data: ReportData) -> list[str]:
    """Why quality was not measured, where a sweep with --quality failed to measure it."""
    return list(dict.fromkeys(it.rec.quality["error"] for it in data.ok
                              if isinstance(it.rec.quality, dict) and "error" in it.rec.quality))


def cache_summary(rows: list[dict], data: ReportData) -> list[dict]:
    """Per cache type pair (and host, when several): the ratio ranges a reader wants first."""
    out = []
    for pair in data.pairs:
        for host in data.hosts:
            mine = [r for r in rows if r["pair"] == pair and r["host"] == host]
            if not mine:
                continue

            def vals(key: str) -> list[float]:
                return [r[key] for r in mine if r[key] is not None]

            def trusted(test: str) -> list[float]:
                return [r[f"{test}_ratio"] for r in mine if r[f"{test}_ratio"] is not None
                        and not r[f"{test}_ratio_doubtful"]]

            # the headline speed ratios rest on trusted measurements only; "left out" counts the others
            out.append({"pair": pair, "host": host, "configs": len(mine),
                        "kv_ratio": (min(vals("kv_ratio")), max(vals("kv_ratio"))) if vals("kv_ratio") else None,
                        **{f"{t}_ratio": statistics.median(trusted(t)) if trusted(t) else None for t in ("pp", "tg")},
                        **{f"{t}_ratio_left_out": len(vals(f"{t}_ratio")) - len(trusted(t)) for t in ("pp", "tg")},
                        **{k: max(vals(k)) if k in ("kld", "dppl") else min(vals(k))
                           for k in ("kld", "top1", "dppl") if vals(k)}})
    return out


def describe(data: ReportData, rec: Record) -> str:
    """A configuration in a few words: the cache pair and the settings that vary in this report."""
    s = rec.settings
    parts = [f"{AXIS_LABELS[a]}={fmt_setting(s.get(a))}" for a in data.shown_axes if a in s]
    return f"{s.get('cache_type_k')}/{s.get('cache_type_v')} " + " ".join(parts)


def check_failures(data: ReportData) -> list[dict]:
    """Measured configurations where llama.cpp or the process disagreed with the model."""
    out = []
    for it in data.ok:
        c = it.rec.check
        if failed_checks(c):
            out.append({"host": it.host, "config": describe(data, it.rec), "id": it.rec.id,
                        "kv_exact": c.get("kv_exact"), "kv_mismatches": c.get("kv_mismatches") or [],
                        "kv_predicted": it.rec.predicted.get("kv_bytes"), "kv_measured": measured_kv_bytes(it.rec),
                        "rss_explained": c.get("rss_explained"), "rss_growth": c.get("rss_growth"),
                        "rss_expected": c.get("rss_expected"), "rss_tolerance": c.get("rss_tolerance"),
                        "vram_explained": c.get("vram_explained"), "vram_growth": c.get("vram_growth"),
                        "vram_expected": c.get("vram_expected")})
    return out


def not_measured(data: ReportData) -> list[dict]:
    """Skipped and failed configurations, each with the reason the sweep recorded."""
    return [{"host": it.host, "status": it.rec.status, "config": describe(data, it.rec),
             "reason": it.rec.reason or ""} for it in data.items if not it.ok]


def environments(data: ReportData) -> list[dict]:
    """One environment block per host (from its first ok record), with the threads it used."""
    out = []
    for host in data.hosts:
        mine = [i for i in data.ok if i.host == host]
        env = mine[0].rec.env if mine else {}
        gpu = env.get("gpu")
        if isinstance(gpu, dict):
            cards = zip(gpu.get("gpus", []), gpu.get("memory_total", []))
            gpu = ", ".join(f"{n} ({m / 2**30:.1f} GiB)" for n, m in cards) + \
                f"; driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}"
        out.append({
            "host": host, "sources": sorted({str(i.source) for i in data.items if i.host == host}),
            "llama_cpp_python": env.get("llama_cpp_python"), "ggufprof": env.get("ggufprof"),
            "llama_cpp_system_info": env.get("llama_cpp_system_info"), "cpu": env.get("cpu"),
            "cpu_count_physical": env.get("cpu_count_physical"), "cpu_count_logical": env.get("cpu_count_logical"),
            "memory_total": env.get("memory_total"), "platform": env.get("platform"), "python": env.get("python"),
            "gpu": gpu or (f"none ({env['gpu_unavailable']})" if env.get("gpu_unavailable") else "none"),
            "threads": sorted({i.rec.settings.get("threads") for i in mine if i.rec.settings.get("threads")}),
        })
    return out
