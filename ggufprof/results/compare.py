"""Compare two result sets, a baseline and a new run, as a CI gate: exit 1 on a real regression.

Configurations are matched by their settings (the ``settings`` dict, which the record ``id``
encodes), never by position. Each matched pair with status ``ok`` on both sides is judged per metric:

Memory is deterministic, so it is compared exactly (rational arithmetic, no float rounding)
against a threshold, with no statistics:

* ``kv_predicted`` (predicted.kv_bytes) and ``kv_logged`` (the sum of llama.cpp's printed
  ``total_mib`` strings, kept at its printed precision) use ``max_kv_increase``, **0 by default**:
  the KV cache is a pure function of model, settings and llama.cpp's rules, so *any* growth is a
  real change. One more q8_0 block is 34 bytes; a 1 % threshold would hide it on every cache larger
  than 3.4 KB, i.e. always.
* ``rss_context`` (RSS growth at context creation) and ``rss_peak`` use ``max_mem_increase``
  (1 %) plus an absolute ``rss_noise`` floor (1 MiB): RSS moves by whole pages and by allocator
  state. Two identical sweeps of the llama-gqa fixture differed by up to 24 KiB (2.3 %) of a ~1 MiB
  growth; the runner's own RSS check allows 4 MiB for the same reason.

Speed is noisy, so, as pyperf's ``compare_to`` does, a change is flagged only when it is both
statistically significant (one-sided, at ``alpha``) and larger than a minimum effect
(``max_tps_drop``, 5 % of the mean) on the raw per-repetition tokens/s samples.

Which test: sweeps take 3 repetitions by default. With n = 3 per side the exact one-sided
Mann-Whitney U test can never go below p = 1/20 = 0.05 (complete separation), so on its own it
could only ever flag at alpha >= 0.05, and it is blind to *how far* apart the samples are. Welch's
t-test (unequal variances) uses the size of the gap relative to the spread and works at n = 3 when
the samples are not wildly spread, but one outlier repetition (common in timing: a page fault, a
scheduler hiccup) inflates its variance. So a change counts as significant when *either* test gives
p <= alpha: Welch for the usual near-normal case, Mann-Whitney for robustness to one outlier.
Each test alone has size alpha; the union at most 2 * alpha, and the minimum-effect gate is what
keeps noise from failing CI (a 1 % change never fails, whatever the p-value). scipy errors are not
caught. A metric with fewer than 2 samples on a side is reported as not compared. The tests run once
per group of configurations with the same sample counts (scipy's tests take arrays, one row per
configuration), not once per configuration: 100,000 configurations are compared in seconds, with
the p-values of one call per configuration.

Quality (``sweep --quality``): ``kld_mean``, the mean KL divergence against f16/f16, is a regression
when it grows by more than ``max_kld_increase`` nats (absolute, 0.001 by default, the
recommendation's MAX_KLD in results/quality.py). Absolute because f16/f16 is exactly 0, where no
ratio exists, and because what matters to a user is how far the cache type moved from f16, not by
what factor. KLD is deterministic for one build on one machine (two runs give the same digits), so
there is no test; only records measured over the same text (sha256), chunk length and chunk count
are compared, others are reported as not compared.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import orjson

from ..errors import GgufprofError
from .llama_log import logged_mib
from .store import no_gc, read_lines, results_file
from .schema import Record

MEMORY_METRICS = ("kv_predicted", "kv_logged", "rss_context", "rss_peak")
# What a comparison reads of each record (store.read_lines keeps only these: less to hold)
COMPARED_FIELDS = ("settings", "predicted.kv_bytes", "measured.kv.caches.kind", "measured.kv.caches.total_mib",
                   *(f"measured.rss.{k}" for k in ("after_load", "after_context", "peak")),
                   "measured.pp.samples_tps", "measured.tg.samples_tps", "check.speed_noise", "quality",
                   "model.sha256", "model.path", "env.hostname", "env.cpu")
SPEED_METRICS = ("pp_tps", "tg_tps")
QUALITY_METRICS = ("kld_mean",)
UNITS = {"kv_predicted": "bytes", "kv_logged": "MiB", "rss_context": "bytes", "rss_peak": "bytes",
         "pp_tps": "tokens/s", "tg_tps": "tokens/s", "kld_mean": "nats"}


@dataclass(frozen=True)
class Thresholds:
    max_kv_increase: float = 0.0  # fraction of the baseline KV size
    max_mem_increase: float = 0.01  # fraction of the baseline RSS values
    rss_noise: int = 1 << 20  # bytes of RSS change always ignored
    max_tps_drop: float = 0.05  # minimum effect on the mean tokens/s
    alpha: float = 0.05
    max_kld_increase: float = 0.001  # nats of mean KLD against f16/f16 (absolute)
    strict_noise: bool = False  # --strict-noise: judge speed rows flagged noisy like the others


@dataclass(slots=True)  # slots: a comparison of 100,000 configurations holds 600,000 of these
class MetricResult:
    """One configuration x metric verdict: regression, improvement, unchanged, noisy (a speed change
    on a measurement flagged noisy: reported, not judged) or not_compared."""

    id: str
    metric: str
    verdict: str
    baseline: object = None  # int bytes, "0.50" MiB string, or mean tokens/s
    new: object = None
    change: float | None = None  # (new - baseline) / baseline
    p_welch: float | None = None  # one-sided, in the direction of the change
    p_mannwhitney: float | None = None
    baseline_samples: list[float] | None = None
    new_samples: list[float] | None = None
    note: str = ""


@dataclass(slots=True)
class Unpaired:
    """A configuration that was not compared at all: on one side only, or not ok on a side."""

    id: str
    baseline_status: str | None
    new_status: str | None
    reason: str = ""


@dataclass
class Comparison:
    baseline: str
    new: str
    thresholds: Thresholds
    results: list[MetricResult] = field(default_factory=list)
    only_baseline: list[Unpaired] = field(default_factory=list)
    only_new: list[Unpaired] = field(default_factory=list)
    not_compared: list[Unpaired] = field(default_factory=list)
    matched: int = 0
    allow_missing: bool = False  # --allow-missing: configurations lost in the new results do not fail

    @property
    def lost(self) -> list[Unpaired]:
        """Configurations measured (ok) in the baseline that the new results lack, or that failed or
        were skipped there: a CI gate must not pass because the new run measured nothing."""
        return ([u for u in self.only_baseline if u.baseline_status == "ok"]
                + [u for u in self.not_compared if u.baseline_status == "ok" and u.new_status != "ok"])

    def gate_failures(self) -> list[str]:
        """Why the gate fails besides regressions: lost configurations, or nothing matched at all."""
        if self.allow_missing:
            return []
        out = [f"{len(self.lost)} configuration(s) ok in the baseline are missing, failed or skipped in the "
               "new results"] if self.lost else []
        if self.matched == 0:
            out.append("no configuration was measured on both sides: nothing was compared")
        return out

    @property
    def failed(self) -> bool:
        """The gate's verdict: exit 1."""
        return bool(self.regressions or self.gate_failures())

    def where(self, verdict: str) -> list[MetricResult]:
        return [r for r in self.results if r.verdict == verdict]

    @property
    def regressions(self) -> list[MetricResult]:
        return self.where("regression")

    def labels(self) -> dict[str, str]:
        ids = [r.id for r in self.results] + [u.id for u in self.only_baseline + self.only_new + self.not_compared]
        return short_labels(ids)

    def to_dict(self) -> dict:
        def rows(items: list) -> list[dict]:  # not asdict: no deep copy of 100,000 rows' samples
            return [{"unit": UNITS[x.metric], **_fields(x)} if isinstance(x, MetricResult) else _fields(x)
                    for x in items]
        return {
            "baseline": self.baseline, "new": self.new, "thresholds": asdict(self.thresholds),
            "matched": self.matched, "regressions": rows(self.where("regression")),
            "improvements": rows(self.where("improvement")), "unchanged": rows(self.where("unchanged")),
            "noisy": rows(self.where("noisy")),
            "only_baseline": rows(self.only_baseline), "only_new": rows(self.only_new),
            "not_compared": rows(self.not_compared) + rows(self.where("not_compared")),
            "lost": rows(self.lost), "gate_failures": self.gate_failures(), "failed": self.failed,
        }


def _fields(x: MetricResult | Unpaired) -> dict:
    return {f: getattr(x, f) for f in x.__dataclass_fields__}


def short_labels(ids: list[str]) -> dict[str, str]:
    """Each id reduced to the ``key=value`` parts that differ between configurations (ids are
    comma-separated ``key=value`` lists), so a table row says what distinguishes it."""
    parts = {i: dict(tok.partition("=")[::2] for tok in i.split(",")) for i in dict.fromkeys(ids)}
    keys = list(dict.fromkeys(k for p in parts.values() for k in p))
    varying = [k for k in keys if len({p.get(k) for p in parts.values()}) > 1]
    return {i: ",".join(f"{k}={p[k]}" for k in varying if k in p) or i for i, p in parts.items()}


def _key(rec: Record) -> str:
    """The settings, as the key that matches a configuration across the two sides (a str: orjson's
    bytes keep the capacity of its buffer, ~8 KiB each)."""
    return orjson.dumps(rec.settings, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(slots=True)
class _Side:
    """What a comparison reads of one record, and nothing more: a comparison holds 100,000 of
    these per side, while each record is read, reduced to this, and let go."""

    id: str
    status: str
    reason: str | None
    memory: tuple  # the MEMORY_METRICS values, in that order
    samples: tuple[list[float], list[float]]  # pp, tg samples_tps
    noisy: frozenset[str]  # the tests results/noise.py flagged
    quality: dict | None
    identity: dict[str, str | None]  # model.sha256 / env.hostname / env.cpu, as _identity_check names them
    model_path: str | None

    @classmethod
    def of(cls, rec: Record) -> "_Side":
        return cls(rec.id, rec.status, rec.reason, tuple(_memory_value(rec, m) for m in MEMORY_METRICS),
                   tuple((rec.measured.get(t) or {}).get("samples_tps") or [] for t in ("pp", "tg")),
                   frozenset(rec.check.get("speed_noise") or ()), rec.quality,
                   {"sha256": rec.model.get("sha256"), "hostname": rec.env.get("hostname"), "cpu": rec.env.get("cpu")},
                   rec.model.get("path"))


def _sides(records: Iterable[Record]) -> dict[str, _Side]:
    """Each configuration's record (the last one, when a configuration appears twice), by settings."""
    return {_key(r): _Side.of(r) for r in records}


def _identity_check(base: Iterable[_Side], new: Iterable[_Side]) -> None:
    """Refuse results of different models or machines: a comparison across them measures those."""
    base, new = list(base), list(new)

    def values(sides: list[_Side], key: str) -> set:
        return {s.identity[key] for s in sides if s.identity[key]}

    for key, what in (("sha256", "models"), ("hostname", "hosts"), ("cpu", "CPUs")):
        b, n = values(base, key), values(new, key)
        if b and n and b != n:
            def show(vals: set) -> str:
                return ", ".join(sorted(v[:12] if key == "sha256" else v for v in vals))
            extra = ""
            if key == "sha256":
                extra = f" ({', '.join(sorted({Path(s.model_path or '?').name for s in base}))} vs " \
                        f"{', '.join(sorted({Path(s.model_path or '?').name for s in new}))})"
            raise GgufprofError(f"results from different {what}: {key} {show(b)} in the baseline, {show(n)} in the "
                                f"new results{extra}; pass --force to compare anyway")


def _logged_kv(rec: Record) -> Decimal | None:
    """What llama.cpp logged for the caches that grow with the context (beside the predicted kv_bytes)."""
    kv = rec.measured.get("kv")
    return logged_mib(kv.get("caches") if isinstance(kv, dict) else None)


def _memory_value(rec: Record, metric: str) -> int | Decimal | None:
    rss = rec.measured.get("rss") or {}
    if metric == "kv_predicted":
        return rec.predicted.get("kv_bytes")
    if metric == "kv_logged":
        return _logged_kv(rec)
    if metric == "rss_context":
        if rss.get("after_context") is None or rss.get("after_load") is None:
            return None
        return rss["after_context"] - rss["after_load"]
    return rss.get("peak")


@functools.lru_cache(maxsize=16)
def _exact(rel: float) -> Fraction:
    return Fraction(str(rel))


def compare_memory(id_: str, metric: str, base: int | Decimal, new: int | Decimal, rel: float,
                   slack: int = 0) -> MetricResult:
    """Exact comparison: regression when new > base * (1 + rel) + slack (Fractions, no rounding)."""
    shown = (str(base), str(new)) if isinstance(base, Decimal) else (base, new)
    if base == new and rel >= 0 and slack >= 0:  # the usual case, decided without Fractions
        return MetricResult(id_, metric, "unchanged", shown[0], shown[1], 0.0 if base else None)
    b, n, r = Fraction(base), Fraction(new), _exact(rel)
    verdict = ("regression" if n > b * (1 + r) + slack else
               "improvement" if n < b * (1 - r) - slack else "unchanged")
    change = float((n - b) / b) if b else (None if n == b else float("inf"))
    return MetricResult(id_, metric, verdict, shown[0], shown[1], change)


def compare_speed(id_: str, metric: str, base: list[float], new: list[float], th: Thresholds) -> MetricResult:
    """Significance (Welch's t or Mann-Whitney U, one-sided, either at alpha) AND minimum effect."""
    return compare_speeds([(id_, metric, base, new)], th)[0]


def compare_speeds(pairs: list[tuple[str, str, list[float], list[float]]], th: Thresholds) -> list[MetricResult]:
    """compare_speed of each (id, metric, baseline samples, new samples), with one call of each test
    per group of pairs alike in what scipy decides per call: the sample counts, the direction
    tested, and whether any value repeats (Mann-Whitney U is exact only without ties)."""
    out: list[MetricResult | None] = [None] * len(pairs)
    groups: dict[tuple, list[int]] = {}
    for i, (id_, metric, base, new) in enumerate(pairs):
        if len(base) < 2 or len(new) < 2:
            out[i] = MetricResult(id_, metric, "not_compared", note=f"fewer than 2 samples ({len(base)} vs {len(new)})")
            continue
        side = "less" if statistics.fmean(new) < statistics.fmean(base) else "greater"
        ties = len(set(base) | set(new)) < len(base) + len(new)
        groups.setdefault((len(base), len(new), side, ties), []).append(i)
    for (_, _, side, _), rows in groups.items():
        p_w, p_u = _pvalues([pairs[i][2] for i in rows], [pairs[i][3] for i in rows], side)
        for i, pw, pu in zip(rows, p_w, p_u):
            out[i] = _speed_verdict(*pairs[i], float(pw), float(pu), th)
    return out  # type: ignore[return-value]


def _pvalues(base: list[list[float]], new: list[list[float]], side: str):
    """One-sided p-values of Welch's t and Mann-Whitney U, one per row (rows of equal length)."""
    import numpy as np
    from scipy.stats import mannwhitneyu, ttest_ind

    b, n = np.array(base, dtype=float), np.array(new, dtype=float)
    return (ttest_ind(n, b, equal_var=False, alternative=side, axis=1).pvalue,
            mannwhitneyu(n, b, alternative=side, axis=1).pvalue)


def _speed_verdict(id_: str, metric: str, base: list[float], new: list[float], p_w: float, p_u: float,
                   th: Thresholds) -> MetricResult:
    mb, mn = statistics.fmean(base), statistics.fmean(new)
    change = (mn - mb) / mb
    significant = p_w <= th.alpha or p_u <= th.alpha  # NaN (constant samples) compares False
    verdict = "unchanged"
    if significant and abs(change) > th.max_tps_drop:
        verdict = "regression" if mn < mb else "improvement"
    return MetricResult(id_, metric, verdict, mb, mn, change, p_w, p_u, base, new)  # the records' own lists


def compare_quality(id_: str, base: dict | None, new: dict | None, th: Thresholds) -> MetricResult | None:
    """Mean KLD against f16/f16: regression when new > base + max_kld_increase; None when neither
    side measured quality."""
    if not base and not new:
        return None

    def measured(q: dict | None) -> bool:
        return isinstance(q, dict) and "kld_mean" in q

    if not (measured(base) and measured(new)):
        side = "baseline" if not measured(base) else "new"
        q = base if side == "baseline" else new
        why = f"not measured in the {side} results" + (f" ({q['error']})" if isinstance(q, dict) and "error" in q else "")
        return MetricResult(id_, "kld_mean", "not_compared", note=why[:REASON_MAX])
    same = [(base.get("text") or {}).get("sha256") == (new.get("text") or {}).get("sha256"),
            base.get("n_ctx") == new.get("n_ctx"), base.get("n_chunks") == new.get("n_chunks")]
    if not all(same):
        return MetricResult(id_, "kld_mean", "not_compared", base["kld_mean"], new["kld_mean"],
                            note="quality measured over a different text, chunk length or chunk count")
    b, n = base["kld_mean"], new["kld_mean"]
    verdict = ("regression" if n > b + th.max_kld_increase else
               "improvement" if n < b - th.max_kld_increase else "unchanged")
    change = (n - b) / b if b else (None if n == b else float("inf"))
    return MetricResult(id_, "kld_mean", verdict, b, n, change)


REASON_MAX = 300  # characters of a record's reason carried into a comparison (a reason can be huge)


def _reason(rec: _Side) -> str:
    r = str(rec.reason or "")
    return r if len(r) <= REASON_MAX else r[:REASON_MAX] + "…"


def compare_records(base: Iterable[Record], new: Iterable[Record], th: Thresholds, baseline_name: str = "baseline",
                    new_name: str = "new", force: bool = False, allow_missing: bool = False) -> Comparison:
    """``base`` and ``new`` may be iterators (compare_paths streams them): each record is reduced to
    what the comparison reads as it comes."""
    b_by, n_by = _sides(base), _sides(new)
    if not force:
        _identity_check(b_by.values(), n_by.values())
    out = Comparison(baseline_name, new_name, th, allow_missing=allow_missing)
    speed: list[tuple[int, tuple, list[str]]] = []  # (place in out.results, pair, noisy sides): judged together
    for k, b in b_by.items():
        n = n_by.get(k)
        if n is None:
            out.only_baseline.append(Unpaired(b.id, b.status, None, _reason(b)))
            continue
        if b.status != "ok" or n.status != "ok":
            why = "; ".join(f"{side}: {r.status}" + (f" ({_reason(r)})" if r.reason else "")
                            for side, r in (("baseline", b), ("new", n)) if r.status != "ok")
            out.not_compared.append(Unpaired(b.id, b.status, n.status, why))
            continue
        out.matched += 1
        for metric, vb, vn in zip(MEMORY_METRICS, b.memory, n.memory):
            if vb is None and vn is None:
                continue
            if vb is None or vn is None:
                side = "baseline" if vb is None else "new"
                out.results.append(MetricResult(b.id, metric, "not_compared", vb, vn, note=f"missing in the {side} results"))
                continue
            kv = metric.startswith("kv_")
            out.results.append(compare_memory(b.id, metric, vb, vn, th.max_kv_increase if kv else th.max_mem_increase,
                                              0 if kv else th.rss_noise))
        for metric, sb, sn in zip(SPEED_METRICS, b.samples, n.samples):
            if sb or sn:
                noisy = [side for side, rec in (("baseline", b), ("new", n)) if metric[:2] in rec.noisy]
                speed.append((len(out.results), (b.id, metric, sb, sn), noisy))
                out.results.append(None)  # type: ignore[arg-type]  -- filled below
        if (q := compare_quality(b.id, b.quality, n.quality, th)) is not None:
            out.results.append(q)
    for (place, _, noisy), r in zip(speed, compare_speeds([pair for _, pair, _ in speed], th)):
        if noisy and r.verdict in ("regression", "improvement") and not th.strict_noise:
            # a flagged measurement (results/noise.py) is reported, never judged
            r = dataclasses.replace(r, verdict="noisy", note=f"{' and '.join(noisy)} flagged noisy: "
                                    f"would be a {r.verdict}; --strict-noise to judge it")
        out.results[place] = r
    out.only_new = [Unpaired(r.id, None, r.status, _reason(r)) for k, r in n_by.items() if k not in b_by]
    return out


def compare_paths(baseline: str | Path, new: str | Path, th: Thresholds, force: bool = False,
                  allow_missing: bool = False, problems: list[str] | None = None) -> Comparison:
    """Unreadable results lines are skipped and described in ``problems``: a configuration whose
    line is torn in the new results counts as lost. The files are streamed (results_file first, so
    a missing one is refused before anything is read)."""
    files = results_file(baseline), results_file(new)

    def records(path: Path) -> Iterator[Record]:
        return (x for x in read_lines(path, problems, COMPARED_FIELDS) if isinstance(x, Record))

    with no_gc():
        return compare_records(records(files[0]), records(files[1]), th, str(baseline), str(new), force,
                               allow_missing)
