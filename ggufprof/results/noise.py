"""How trustworthy a speed measurement is: one home for the noise rules (pure).

Per repetition the worker records the machine's state (``samples_noise``: 1-minute load average,
this process's CPU time / wall time, the share of the machine other processes used, CPU frequency
where readable). A speed block is *noisy* when

* its repetitions spread: coefficient of variation above ``CV_MAX`` (10 %), or
* other processes took more than ``OTHERS_MAX`` (25 %) of the machine's CPU time during a
  repetition (the run competed for cores), or
* with automatic repetitions, the 95 % confidence interval never got within the target.

The sweep stores the verdict in each record (``check.speed_noisy``, information for the live table
and the report). ``compare`` never reads that stored flag: it decides from the samples of both
sides, by the same rule (:func:`unjudgeable`), whether a speed comparison can be judged at all. A
side with fewer than ``MIN_SAMPLES`` samples, or a noisy one, leaves a comparison that is not a
significant, large change *inconclusive* (its own exit code, results/compare.py): noise can hide a
regression, so it never counts as "unchanged"; it never turns a significant regression into a pass
either, since the significance tests already weigh the spread.

``--repetitions auto`` repeats until the 95 % confidence interval of the mean (Student's t) is
within ±``CI_TARGET`` (3 %) of it, between ``AUTO_MIN`` and ``AUTO_MAX`` repetitions, as pyperf and
hyperfine do.
"""

from __future__ import annotations

import math
import statistics

from ..flags import AUTO

CV_MAX = 0.10
OTHERS_MAX = 0.25
CI_TARGET = 0.03
AUTO_MIN, AUTO_MAX = 3, 20

# Student's t, two-sided 95 %, by degrees of freedom (1..19); 1.96 beyond
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093]


def stdev(xs: list[float]) -> float:
    """The sample standard deviation in floating point (two passes, math.fsum): what
    statistics.stdev gives to the last digits or so, ~30x faster (it computes exactly, in Fractions),
    which matters when a comparison judges 100,000 configurations."""
    m = math.fsum(xs) / len(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def ci95_rel(samples: list[float]) -> float:
    """Half-width of the 95 % confidence interval of the mean, relative to the mean (inf below 2)."""
    n = len(samples)
    if n < 2:
        return math.inf
    mean = statistics.fmean(samples)
    if mean <= 0:
        return math.inf
    t = _T975[n - 2] if n - 2 < len(_T975) else 1.96
    return t * stdev(samples) / math.sqrt(n) / mean


def enough(samples: list[float], target: float = CI_TARGET) -> bool:
    """Whether automatic repetitions may stop."""
    return len(samples) >= AUTO_MAX or (len(samples) >= AUTO_MIN and ci95_rel(samples) <= target)


MIN_SAMPLES = 2  # a spread, and so any significance test, needs two repetitions


def samples(block: dict | None) -> list[float]:
    """The tokens/s of each repetition of a speed block (measured.pp / measured.tg)."""
    if not isinstance(block, dict):
        return []
    return [x for x in block.get("samples_tps") or [] if isinstance(x, (int, float)) and not isinstance(x, bool)]


def others_shares(block: dict) -> list[float]:
    """The share of the CPU other processes took during each repetition (measure/repeat.py), where
    it was measured."""
    others = [s.get("others_cpu_share") for s in block.get("samples_noise") or [] if isinstance(s, dict)]
    return [x for x in others if isinstance(x, (int, float))]


def noise_reasons(block: dict | None, auto: bool = False) -> list[str]:
    """Why a speed block (measured.pp / measured.tg) is not to be trusted; empty when it is."""
    if not block:
        return []
    xs = samples(block)
    out = []
    if len(xs) >= 2 and statistics.fmean(xs) > 0:
        cv = stdev(xs) / statistics.fmean(xs)
        if cv > CV_MAX:
            out.append(f"spread {cv:.0%} > {CV_MAX:.0%}")
    others = others_shares(block)
    if others and max(others) > OTHERS_MAX:
        out.append(f"other processes used {max(others):.0%} of the CPU")
    if auto and len(xs) >= AUTO_MAX and ci95_rel(xs) > CI_TARGET:
        out.append(f"95% CI ±{ci95_rel(xs):.0%} after {len(xs)} repetitions")
    return out


def record_noise(measured: dict, auto: bool = False) -> dict:
    """The check entries of a record: ``speed_noisy`` and, per test, the reasons."""
    reasons = {t: noise_reasons(measured.get(t), auto) for t in ("pp", "tg")}
    reasons = {t: r for t, r in reasons.items() if r}
    return {"speed_noisy": bool(reasons), "speed_noise": reasons}


def caveats(block: dict | None, auto: bool = False) -> list[str]:
    """Why one speed block's mean cannot be read as this configuration's speed, from its own samples:
    fewer than MIN_SAMPLES repetitions (no spread, so no way to tell a difference from chance), or
    noise (:func:`noise_reasons`). Empty when it can. The one rule behind every place speed is shown
    or judged: compare (:func:`unjudgeable`), check's speed limits, fit's speed ratio, ``results``
    and the report."""
    n = len(samples(block))
    return ([f"{n} sample(s), fewer than {MIN_SAMPLES}"] if n < MIN_SAMPLES else []) + noise_reasons(block, auto)


def is_auto(settings: dict) -> bool:
    """Whether a record's settings ran ``--repetitions auto`` (the CI target joins the noise rules)."""
    return settings.get("repetitions") == AUTO


def record_caveats(rec, test: str) -> list[str]:
    """:func:`caveats` of a record's ``pp`` or ``tg`` block (anything with ``measured`` and ``settings``)."""
    return caveats((rec.measured or {}).get(test), is_auto(rec.settings or {}))


def has_spread(block: dict | None) -> bool:
    """Whether the block's standard deviation means anything: at least MIN_SAMPLES repetitions (with one,
    the recorded 0 is no spread measured, shown as "n/a", never "±0")."""
    return len(samples(block)) >= MIN_SAMPLES


def unjudgeable(base: dict | None, new: dict | None, auto: tuple[bool, bool] = (False, False)) -> list[str]:
    """Why a speed comparison of two blocks cannot be trusted to say "unchanged", from the blocks'
    own samples and the same rule for both sides (``auto``: each side ran ``--repetitions auto``):
    :func:`caveats` of either side. Empty when it can."""
    out = []
    for side, block, side_auto in (("baseline", base, auto[0]), ("new", new, auto[1])):
        why = caveats(block, side_auto)
        if why:
            out.append(f"{side}: {', '.join(why)}")
    return out
