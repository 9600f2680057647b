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
caught. A metric with fewer than 2 samples on a side is reported as not compared.

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
import json
import statistics
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from ..errors import GgufprofError
from .llama_log import logged_mib
from .store import load_records
from .schema import Record

MEMORY_METRICS = ("kv_predicted", "kv_logged", "rss_context", "rss_peak")
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


@dataclass
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


@dataclass
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
        def rows(items: list) -> list[dict]:
            return [{"unit": UNITS[x.metric], **asdict(x)} if isinstance(x, MetricResult) else asdict(x)
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


def short_labels(ids: list[str]) -> dict[str, str]:
    """Each id reduced to the ``key=value`` parts that differ between configurations (ids are
    comma-separated ``key=value`` lists), so a table row says what distinguishes it."""
    parts = {i: dict(tok.partition("=")[::2] for tok in i.split(",")) for i in dict.fromkeys(ids)}
    keys = list(dict.fromkeys(k for p in parts.values() for k in p))
    varying = [k for k in keys if len({p.get(k) for p in parts.values()}) > 1]
    return {i: ",".join(f"{k}={p[k]}" for k in varying if k in p) or i for i, p in parts.items()}


def _key(rec: Record) -> str:
    return json.dumps(rec.settings, sort_keys=True)


def _identity_check(base: list[Record], new: list[Record]) -> None:
    """Refuse results of different models or machines: a comparison across them measures those."""
    def values(recs: list[Record], block: str, key: str) -> set:
        return {getattr(r, block).get(key) for r in recs if getattr(r, block).get(key)}

    for block, key, what in (("model", "sha256", "models"), ("env", "hostname", "hosts"), ("env", "cpu", "CPUs")):
        b, n = values(base, block, key), values(new, block, key)
        if b and n and b != n:
            def show(vals: set) -> str:
                return ", ".join(sorted(v[:12] if key == "sha256" else v for v in vals))
            extra = ""
            if key == "sha256":
                extra = f" ({', '.join(sorted({Path(r.model.get('path', '?')).name for r in base}))} vs " \
                        f"{', '.join(sorted({Path(r.model.get('path', '?')).name for r in new}))})"
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


def compare_memory(id_: str, metric: str, base: int | Decimal, new: int | Decimal, rel: float,
                   slack: int = 0) -> MetricResult:
    """Exact comparison: regression when new > base * (1 + rel) + slack (Fractions, no rounding)."""
    b, n, r = Fraction(base), Fraction(new), Fraction(str(rel))
    verdict = ("regression" if n > b * (1 + r) + slack else
               "improvement" if n < b * (1 - r) - slack else "unchanged")
    shown = (str(base), str(new)) if isinstance(base, Decimal) else (base, new)
    change = float((n - b) / b) if b else (None if n == b else float("inf"))
    return MetricResult(id_, metric, verdict, shown[0], shown[1], change)


def compare_speed(id_: str, metric: str, base: list[float], new: list[float], th: Thresholds) -> MetricResult:
    """Significance (Welch's t or Mann-Whitney U, one-sided, either at alpha) AND minimum effect."""
    from scipy.stats import mannwhitneyu, ttest_ind

    if len(base) < 2 or len(new) < 2:
        return MetricResult(id_, metric, "not_compared", note=f"fewer than 2 samples ({len(base)} vs {len(new)})")
    mb, mn = statistics.fmean(base), statistics.fmean(new)
    change = (mn - mb) / mb
    side = "less" if mn < mb else "greater"
    p_w = float(ttest_ind(new, base, equal_var=False, alternative=side).pvalue)
    p_u = float(mannwhitneyu(new, base, alternative=side).pvalue)
    significant = p_w <= th.alpha or p_u <= th.alpha  # NaN (constant samples) compares False
    verdict = "unchanged"
    if significant and abs(change) > th.max_tps_drop:
        verdict = "regression" if side == "less" else "improvement"
    return MetricResult(id_, metric, verdict, mb, mn, change, p_w, p_u, list(base), list(new))


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


def _reason(rec: Record) -> str:
    r = str(rec.reason or "")
    return r if len(r) <= REASON_MAX else r[:REASON_MAX] + "…"


def compare_records(base: list[Record], new: list[Record], th: Thresholds, baseline_name: str = "baseline",
                    new_name: str = "new", force: bool = False, allow_missing: bool = False) -> Comparison:
    if not force:
        _identity_check(base, new)
    b_by, n_by = {_key(r): r for r in base}, {_key(r): r for r in new}
    out = Comparison(baseline_name, new_name, th, allow_missing=allow_missing)
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
        for metric in MEMORY_METRICS:
            vb, vn = _memory_value(b, metric), _memory_value(n, metric)
            if vb is None and vn is None:
                continue
            if vb is None or vn is None:
                side = "baseline" if vb is None else "new"
                out.results.append(MetricResult(b.id, metric, "not_compared", vb, vn, note=f"missing in the {side} results"))
                continue
            kv = metric.startswith("kv_")
            out.results.append(compare_memory(b.id, metric, vb, vn, th.max_kv_increase if kv else th.max_mem_increase,
                                              0 if kv else th.rss_noise))
        for metric in SPEED_METRICS:
            sb = (b.measured.get(metric[:2]) or {}).get("samples_tps") or []
            sn = (n.measured.get(metric[:2]) or {}).get("samples_tps") or []
            if sb or sn:
                r = compare_speed(b.id, metric, sb, sn, th)
                noisy = [side for side, rec in (("baseline", b), ("new", n))
                         if metric[:2] in (rec.check.get("speed_noise") or {})]
                if noisy and r.verdict in ("regression", "improvement") and not th.strict_noise:
                    # a flagged measurement (results/noise.py) is reported, never judged
                    r = dataclasses.replace(r, verdict="noisy", note=f"{' and '.join(noisy)} flagged noisy: "
                                            f"would be a {r.verdict}; --strict-noise to judge it")
                out.results.append(r)
        if (q := compare_quality(b.id, b.quality, n.quality, th)) is not None:
            out.results.append(q)
    out.only_new = [Unpaired(r.id, None, r.status, _reason(r)) for k, r in n_by.items() if k not in b_by]
    return out


def compare_paths(baseline: str | Path, new: str | Path, th: Thresholds, force: bool = False,
                  allow_missing: bool = False, problems: list[str] | None = None) -> Comparison:
    """Unreadable results lines are ignored and described in ``problems``: a configuration whose
    line is torn in the new results counts as lost."""
    return compare_records(load_records(baseline, problems), load_records(new, problems), th, str(baseline),
                           str(new), force, allow_missing)
