"""Compare two result sets, a baseline and a new run, as a CI gate that cannot pass what it could not judge.

The outcome (``Comparison.status`` / ``exit_code``, errors.ExitCode) is one of:

* **fail** (exit 1): a regression; a configuration measured (ok) in the baseline that the new results
  lack, failed or skipped; a metric compared in the baseline that the new results lack or measured
  in a way that cannot be compared (a quality block that is an error, absent, or over another
  text / chunk length / chunk count; no speed samples; ``measured.kv`` null); or nothing matched at
  all. ``allow_missing`` (``--allow-missing``) accepts what is lost, never a regression.
* **inconclusive** (exit 3): a speed comparison that is not a significant, large change but cannot be
  called unchanged either: a side with fewer than 2 samples, a noisy side, or a large change the
  samples do not confirm. ``allow_noisy`` (``--allow-noisy``) accepts it (exit 0, still reported).
* **pass** (exit 0) otherwise. Bad input (unreadable files, results of other models or machines,
  a configuration twice in one input) raises GgufprofError before any verdict (exit 2).

Configurations are matched by what their settings mean, not by the raw ``settings`` dict: each
record's settings are read as today's RunSettings (results/run_settings.settings_id), a setting an
older record lacks taking its default, so baselines written before a setting existed keep matching.
A configuration that appears twice in one input (two runs concatenated) is refused, never resolved
by keeping one of them. Each matched pair with status ``ok`` on both sides is judged per metric:

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
caught. A significant, large change is a regression or improvement whatever the noise (the tests
weigh the spread); anything else is "unchanged" only when both sides' samples are trustworthy by
results/noise.py's rule (decided here from the samples, never from a flag a record carries) and
the change is below the minimum effect, and inconclusive otherwise. The tests run once per group of
configurations with the same sample counts (scipy's tests take arrays, one row per configuration),
not once per configuration: 100,000 configurations are compared in seconds, with the p-values of one
call per configuration.

Quality (``sweep --quality``): ``kld_mean``, the mean KL divergence against f16/f16, is a regression
when it grows by more than ``max_kld_increase`` nats (absolute, 0.001 by default, the
recommendation's MAX_KLD in results/quality.py). Absolute because f16/f16 is exactly 0, where no
ratio exists, and because what matters to a user is how far the cache type moved from f16, not by
what factor. KLD is deterministic for one build on one machine (two runs give the same digits), so
there is no test; only records measured over the same text (sha256), chunk length and chunk count
are compared.
"""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from ..errors import ExitCode, GgufprofError
from ..flags import AUTO
from .llama_log import logged_mib
from .noise import MIN_SAMPLES, others_shares, samples, unjudgeable
from .run_settings import settings_id
from .schema import Record, build_name
from .store import no_gc, read_lines, results_file

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


@dataclass(slots=True)
class MetricResult:
    """One configuration x metric verdict:

    * ``regression``, ``improvement``, ``unchanged``: judged;
    * ``inconclusive``: a speed comparison that cannot be judged (too few samples, noise, a large
      change the samples do not confirm): exit 3 unless ``--allow-noisy``;
    * ``missing``: measured in the baseline, absent or not comparable in the new results: the gate
      fails unless ``--allow-missing``;
    * ``not_compared``: not measured in the baseline, so there is nothing to hold the new results to.
    """

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
    allow_missing: bool = False  # --allow-missing: configurations and metrics lost in the new results do not fail
    allow_noisy: bool = False  # --allow-noisy: inconclusive comparisons do not fail (still reported)
    builds: dict[str, list[str]] = field(default_factory=dict)  # side -> the llama.cpp builds its records ran

    @property
    def builds_differ(self) -> bool:
        """Whether the two sides ran different llama.cpp builds (the upgrade question)."""
        return self.builds.get("baseline") != self.builds.get("new")

    def builds_line(self) -> str:
        b, n = (", ".join(self.builds.get(side) or ["none"]) for side in ("baseline", "new"))
        return (f"llama.cpp: baseline {b}; new {n}" if self.builds_differ
                else f"llama.cpp: the same build on both sides, {b}")

    @property
    def lost(self) -> list[Unpaired]:
        """Configurations measured (ok) in the baseline that the new results lack, or that failed or
        were skipped there: a CI gate must not pass because the new run measured nothing."""
        return ([u for u in self.only_baseline if u.baseline_status == "ok"]
                + [u for u in self.not_compared if u.baseline_status == "ok" and u.new_status != "ok"])

    def gate_failures(self) -> list[str]:
        """Why the gate fails besides regressions: lost configurations or metrics, or nothing matched."""
        if self.allow_missing:
            return []
        out = [f"{len(self.lost)} configuration(s) ok in the baseline are missing, failed or skipped in the "
               "new results"] if self.lost else []
        if missing := self.where("missing"):
            out.append(f"{len(missing)} metric(s) compared in the baseline are missing or not comparable in the "
                       "new results")
        if self.matched == 0:
            out.append("no configuration was measured on both sides: nothing was compared")
        return out

    @property
    def failed(self) -> bool:
        """A regression or something lost: exit 1."""
        return bool(self.regressions or self.gate_failures())

    @property
    def status(self) -> str:
        """The gate's verdict: "fail", "inconclusive" (nothing failed, but some comparisons could not be
        judged and ``allow_noisy`` does not accept them) or "pass"."""
        if self.failed:
            return "fail"
        return "inconclusive" if self.where("inconclusive") and not self.allow_noisy else "pass"

    @property
    def exit_code(self) -> ExitCode:
        return {"fail": ExitCode.FAIL, "inconclusive": ExitCode.INCONCLUSIVE, "pass": ExitCode.PASS}[self.status]

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
            "status": self.status, "exit_code": int(self.exit_code),
            "allow_missing": self.allow_missing, "allow_noisy": self.allow_noisy,
            "matched": self.matched, "regressions": rows(self.where("regression")),
            "improvements": rows(self.where("improvement")), "unchanged": rows(self.where("unchanged")),
            "inconclusive": rows(self.where("inconclusive")), "missing": rows(self.where("missing")),
            "only_baseline": rows(self.only_baseline), "only_new": rows(self.only_new),
            "not_compared": rows(self.not_compared) + rows(self.where("not_compared")),
            "lost": rows(self.lost), "gate_failures": self.gate_failures(), "failed": self.failed,
            "builds": self.builds, "builds_differ": self.builds_differ,
        }


def short_labels(ids: list[str]) -> dict[str, str]:
    """Each id reduced to the ``key=value`` parts that differ between configurations (ids are
    comma-separated ``key=value`` lists), so a table row says what distinguishes it."""
    parts = {i: dict(tok.partition("=")[::2] for tok in i.split(",")) for i in dict.fromkeys(ids)}
    keys = list(dict.fromkeys(k for p in parts.values() for k in p))
    varying = [k for k in keys if len({p.get(k) for p in parts.values()}) > 1]
    return {i: ",".join(f"{k}={p[k]}" for k in varying if k in p) or i for i, p in parts.items()}


DUPLICATES_SHOWN = 3


@dataclass(slots=True)
class Side:
    """What compare reads of one record, reduced as it is read: a configuration's key
    (settings_id), its status, its memory figures, its speed blocks and quality, and who measured it.
    100,000 records are held in a few hundred MiB this way, not as whole records."""

    key: str
    id: str
    status: str
    reason: str
    memory: tuple  # one value (or None) per MEMORY_METRICS
    speed: tuple  # measured.pp, measured.tg (samples and noise) or None
    auto: bool  # --repetitions auto
    quality: dict | None
    identity: dict  # sha256, hostname, cpu, path
    build: str

    @classmethod
    def of(cls, rec: Record, name: str) -> "Side":
        try:
            key = settings_id(rec.settings)
        except GgufprofError as e:
            raise GgufprofError(f"{name}: configuration {rec.id}: {e}") from None
        identity = {"sha256": rec.model.get("sha256"), "path": rec.model.get("path"),
                    "hostname": rec.env.get("hostname"), "cpu": rec.env.get("cpu")}
        return cls(key, rec.id, rec.status, _reason(rec), tuple(_memory_value(rec, m) for m in MEMORY_METRICS),
                   tuple(_speed_block(rec.measured.get(t)) for t in ("pp", "tg")),
                   rec.settings.get("repetitions") == AUTO, rec.quality,
                   _IDENTITIES.setdefault(tuple(identity.values()), identity), sys.intern(build_name(rec.env)))


_IDENTITIES: dict[tuple, dict] = {}  # one identity dict per distinct (model, host, CPU): held once


def _speed_block(block: dict | None) -> dict | None:
    """What the speed test and the noise rule read of a speed block (results/noise.py): the samples,
    and the largest share of the CPU other processes took while they ran (the rule compares the
    largest with its limit)."""
    if not isinstance(block, dict):
        return None
    out: dict = {"samples_tps": samples(block)}
    if others := others_shares(block):
        out["samples_noise"] = [{"others_cpu_share": max(others)}]
    return out


def by_configuration(sides: list[Side], name: str) -> dict[str, Side]:
    """{configuration id (settings_id): side} of one input. A configuration that appears twice
    (two runs concatenated, results merged by hand) is an error naming it: which record would be the
    result is not ours to guess, and keeping the last one lets a clean run hide a regressed one."""
    by: dict[str, Side] = {}
    dups: dict[str, int] = {}
    for side in sides:
        if side.key in by:
            dups[side.key] = dups.get(side.key, 1) + 1
        else:
            by[side.key] = side
    if dups:
        shown = [f"{k} ({n} records)" for k, n in dups.items()]
        more = f"; and {len(shown) - DUPLICATES_SHOWN} more" if len(shown) > DUPLICATES_SHOWN else ""
        raise GgufprofError(f"{name}: {len(shown)} configuration(s) appear more than once: "
                            f"{'; '.join(shown[:DUPLICATES_SHOWN])}{more}. Compare one run with one run "
                            "(a sweep, --resume included, writes each configuration once)")
    return by


def _identity_check(base: list[Side], new: list[Side]) -> None:
    """Refuse results of different models or machines: a comparison across them measures those."""
    def values(sides: list[Side], key: str) -> set:
        return {s.identity[key] for s in sides if s.identity[key]}

    for key, what in (("sha256", "models"), ("hostname", "hosts"), ("cpu", "CPUs")):
        b, n = values(base, key), values(new, key)
        if b and n and b != n:
            def show(vals: set) -> str:
                return ", ".join(sorted(v[:12] if key == "sha256" else v for v in vals))
            extra = ""
            if key == "sha256":
                extra = f" ({', '.join(sorted({Path(str(s.identity['path'] or '?')).name for s in base}))} vs " \
                        f"{', '.join(sorted({Path(str(s.identity['path'] or '?')).name for s in new}))})"
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


def one_side(id_: str, metric: str, in_baseline: bool, why: str = "") -> MetricResult:
    """A metric measured on one side only: ``missing`` when the baseline has it (the new results lost
    it), ``not_compared`` when only the new results have it (nothing to hold them to)."""
    side = "new" if in_baseline else "baseline"
    return MetricResult(id_, metric, "missing" if in_baseline else "not_compared",
                        note=f"not measured in the {side} results" + (f" ({why})" if why else ""))


@functools.lru_cache(maxsize=16)
def _exact(rel: float) -> Fraction:
    return Fraction(str(rel))


def compare_memory(id_: str, metric: str, base: int | Decimal, new: int | Decimal, rel: float,
                   slack: int = 0) -> MetricResult:
    """Exact comparison: regression when new > base * (1 + rel) + slack (rational, no rounding:
    integers scaled by the threshold's denominator, Fractions for logged MiB)."""
    r = _exact(rel)
    if isinstance(base, int) and isinstance(new, int):
        d, b, n, sl = r.denominator, base * r.denominator, new * r.denominator, slack * r.denominator
        up, down = base * (d + r.numerator) + sl, base * (d - r.numerator) - sl
    else:
        b, n, sl = Fraction(base), Fraction(new), slack
        up, down = b * (1 + r) + sl, b * (1 - r) - sl
    verdict = "regression" if n > up else "improvement" if n < down else "unchanged"
    shown = (str(base), str(new)) if isinstance(base, Decimal) else (base, new)
    change = float((n - b) / b) if b else (None if n == b else float("inf"))
    return MetricResult(id_, metric, verdict, shown[0], shown[1], change)


SpeedCase = tuple  # (id, metric, baseline block, new block, (baseline auto, new auto))


def compare_speed(id_: str, metric: str, base: dict | None, new: dict | None, th: Thresholds,
                  auto: tuple[bool, bool] = (False, False)) -> MetricResult:
    """Two speed blocks (measured.pp / measured.tg, with their samples): a regression or improvement
    when significant (Welch's t or Mann-Whitney U, one-sided, either at alpha) AND larger than the
    minimum effect; otherwise unchanged only when both sides can be trusted (results/noise.py's
    ``unjudgeable``, the same rule for both) and the change is below the minimum effect, else
    inconclusive. ``auto``: each side ran ``--repetitions auto``."""
    return compare_speeds([(id_, metric, base, new, auto)], th)[0]


def compare_speeds(cases: list[SpeedCase], th: Thresholds) -> list[MetricResult]:
    """compare_speed of each case, with one call of each test per group of cases alike in what scipy
    decides per call: the sample counts, the direction tested, and whether any value repeats
    (Mann-Whitney U is exact only without ties)."""
    out: list[MetricResult | None] = [None] * len(cases)
    groups: dict[tuple, list[tuple[int, list[float], list[float], list[str]]]] = {}
    for i, (id_, metric, base, new, auto) in enumerate(cases):
        sb, sn = samples(base), samples(new)
        doubts = unjudgeable(base, new, auto)
        mb, mn = (statistics.fmean(xs) if xs else None for xs in (sb, sn))
        if len(sb) < MIN_SAMPLES or len(sn) < MIN_SAMPLES or mb <= 0:  # no test can run (or no ratio exists)
            positive = mb is not None and mb > 0
            change = (mn - mb) / mb if positive and mn is not None else None
            why = doubts + ([] if positive or mb is None else ["the baseline's mean is not positive"])
            out[i] = MetricResult(id_, metric, "inconclusive", mb, mn, change, None, None, sb, sn, "; ".join(why))
            continue
        side = "less" if mn < mb else "greater"
        ties = len(set(sb) | set(sn)) < len(sb) + len(sn)
        groups.setdefault((len(sb), len(sn), side, ties), []).append((i, sb, sn, doubts))
    for (_, _, side, _), rows in groups.items():
        p_w, p_u = _pvalues([r[1] for r in rows], [r[2] for r in rows], side)
        for (i, sb, sn, doubts), pw, pu in zip(rows, p_w, p_u):
            out[i] = _speed_verdict(cases[i][0], cases[i][1], sb, sn, float(pw), float(pu), doubts, th)
    return out  # type: ignore[return-value]


def _pvalues(base: list[list[float]], new: list[list[float]], side: str):
    """One-sided p-values of Welch's t and Mann-Whitney U, one per row (rows of equal length)."""
    import numpy as np
    from scipy.stats import mannwhitneyu, ttest_ind

    b, n = np.array(base, dtype=float), np.array(new, dtype=float)
    return (ttest_ind(n, b, equal_var=False, alternative=side, axis=1).pvalue,
            mannwhitneyu(n, b, alternative=side, axis=1).pvalue)


def _speed_verdict(id_: str, metric: str, sb: list[float], sn: list[float], p_w: float, p_u: float,
                   doubts: list[str], th: Thresholds) -> MetricResult:
    mb, mn = statistics.fmean(sb), statistics.fmean(sn)
    change = (mn - mb) / mb
    significant = p_w <= th.alpha or p_u <= th.alpha  # NaN (constant samples) compares False
    large = abs(change) > th.max_tps_drop
    if significant and large:
        verdict, note = ("regression" if mn < mb else "improvement"), "; ".join(doubts)
    elif doubts:
        verdict, note = "inconclusive", "; ".join(doubts)
    elif large:
        verdict, note = "inconclusive", f"a {change:+.1%} change that the samples do not confirm at alpha {th.alpha:g}"
    else:
        verdict, note = "unchanged", ""
    return MetricResult(id_, metric, verdict, mb, mn, change, p_w, p_u, sb, sn, note)


def compare_quality(id_: str, base: dict | None, new: dict | None, th: Thresholds) -> MetricResult | None:
    """Mean KLD against f16/f16: regression when new > base + max_kld_increase; ``missing`` when the
    baseline measured it and the new results did not, or measured it over another text, chunk length
    or chunk count; None when neither side has a quality block."""
    if not base and not new:
        return None

    def measured(q: dict | None) -> bool:
        return isinstance(q, dict) and "kld_mean" in q

    if not (measured(base) and measured(new)):
        q = new if measured(base) else base
        why = q["error"] if isinstance(q, dict) and "error" in q else ""
        return one_side(id_, "kld_mean", measured(base), why[:REASON_MAX])
    same = [(base.get("text") or {}).get("sha256") == (new.get("text") or {}).get("sha256"),
            base.get("n_ctx") == new.get("n_ctx"), base.get("n_chunks") == new.get("n_chunks")]
    if not all(same):
        return MetricResult(id_, "kld_mean", "missing", base["kld_mean"], new["kld_mean"],
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


def _compare_pair(key: str, b: Side, n: Side, th: Thresholds, out: list, speed: list[tuple[int, SpeedCase]]
                  ) -> None:
    """Every metric of one configuration measured (ok) on both sides, appended to ``out``; speed
    comparisons get a place in ``out`` and a case in ``speed``, judged together afterwards."""
    for metric, vb, vn in zip(MEMORY_METRICS, b.memory, n.memory):
        if vb is None or vn is None:
            if vb is not None or vn is not None:
                out.append(one_side(key, metric, vb is not None))
            continue
        kv = metric.startswith("kv_")
        out.append(compare_memory(key, metric, vb, vn, th.max_kv_increase if kv else th.max_mem_increase,
                                  0 if kv else th.rss_noise))
    for metric, bb, nb in zip(SPEED_METRICS, b.speed, n.speed):
        if not samples(bb) or not samples(nb):
            if samples(bb) or samples(nb):
                out.append(one_side(key, metric, bool(samples(bb))))
            continue
        speed.append((len(out), (key, metric, bb, nb, (b.auto, n.auto))))
        out.append(None)  # filled by compare_records
    if (q := compare_quality(key, b.quality, n.quality, th)) is not None:
        out.append(q)


def compare_records(base: Iterable[Record], new: Iterable[Record], th: Thresholds, baseline_name: str = "baseline",
                    new_name: str = "new", force: bool = False, allow_missing: bool = False,
                    allow_noisy: bool = False) -> Comparison:
    """``base`` and ``new``: records, or Sides already reduced (compare_paths streams them)."""
    base = [r if isinstance(r, Side) else Side.of(r, baseline_name) for r in base]
    new = [r if isinstance(r, Side) else Side.of(r, new_name) for r in new]
    if not force:
        _identity_check(base, new)
    b_by, n_by = by_configuration(base, baseline_name), by_configuration(new, new_name)
    out = Comparison(baseline_name, new_name, th, allow_missing=allow_missing, allow_noisy=allow_noisy,
                     builds={side: sorted({r.build for r in recs if r.status == "ok"})
                             for side, recs in (("baseline", base), ("new", new))})
    speed: list[tuple[int, SpeedCase]] = []
    for k, b in b_by.items():
        n = n_by.get(k)
        if n is None:
            out.only_baseline.append(Unpaired(k, b.status, None, b.reason))
        elif b.status != "ok" or n.status != "ok":
            why = "; ".join(f"{side}: {r.status}" + (f" ({r.reason})" if r.reason else "")
                            for side, r in (("baseline", b), ("new", n)) if r.status != "ok")
            out.not_compared.append(Unpaired(k, b.status, n.status, why))
        else:
            out.matched += 1
            _compare_pair(k, b, n, th, out.results, speed)
    for (place, _), r in zip(speed, compare_speeds([case for _, case in speed], th)):
        out.results[place] = r
    out.only_new = [Unpaired(k, None, r.status, r.reason) for k, r in n_by.items() if k not in b_by]
    return out


def compare_paths(baseline: str | Path, new: str | Path, th: Thresholds, force: bool = False,
                  allow_missing: bool = False, allow_noisy: bool = False,
                  problems: list[str] | None = None) -> Comparison:
    """Unreadable results lines are skipped and described in ``problems``: a configuration whose
    line is torn in the new results counts as lost. The files are streamed, each record reduced to
    what compare reads (results_file first, so a missing one is refused before anything is read)."""
    files = results_file(baseline), results_file(new)

    def sides(path: Path, name: str) -> list[Side]:
        # each whole record is reduced to its Side as it is read and then dropped: cheaper than
        # projecting fields first (store.read_lines' keep), and as small once held
        return [Side.of(x, name) for x in read_lines(path, problems) if isinstance(x, Record)]

    with no_gc():
        return compare_records(sides(files[0], str(baseline)), sides(files[1], str(new)), th, str(baseline),
                               str(new), force, allow_missing, allow_noisy)
