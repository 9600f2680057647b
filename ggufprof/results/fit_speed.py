"""What the cache type ``fit`` finds the most context for costs in generation speed, from a sweep
of the same model at the same settings (pure: records in, a ratio out).

Speed measured on another model file, or with other settings than the fit's, says nothing about
this answer, so it is not believed:

* the records must be of this model file: the sweep stores its sha256 in every record
  (``model.sha256``); results of another model are refused, naming both;
* and measured with the fit's settings that change generation speed (:data:`SPEED_SETTINGS`: the
  sequences, the unified cache when there are several, swa_full on a model with sliding-window
  layers, flash attention, GPU layers and KV offload); records of other settings are left out, and
  when none is left the refusal says which settings must match and what the results hold.

The ratio pairs each configuration measured with the chosen cache type with the same
configuration (context, depth, threads, ...) measured with f16/f16, and takes the median of the
paired tg ratios: configurations measured with only one of the two do not count, nor do pairs whose
samples compare would not judge (results/noise.py: noisy, or fewer than two repetitions, on either
side); when no pair is left the ratio is "n/a" with the reasons, never a number made of noise.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import GgufprofError
from .noise import is_auto, unjudgeable
from .schema import Record
from .store import check_same_model

SPEED_SETTINGS = ("parallel", "kv_unified", "swa_full", "flash_attn", "n_gpu_layers", "offload_kqv")
F16 = ("f16", "f16")


def speed_settings(parallel: int, kv_unified: bool, swa_full: bool, flash_attn: str, n_gpu_layers: int,
                   offload_kqv: bool, has_swa: bool) -> dict:
    """The fit's values of SPEED_SETTINGS that matter for this model: kv_unified only with several
    sequences (one sequence has one stream either way), swa_full only with sliding-window layers."""
    out = {"parallel": parallel, "kv_unified": kv_unified, "swa_full": swa_full, "flash_attn": flash_attn,
           "n_gpu_layers": n_gpu_layers, "offload_kqv": offload_kqv}
    if parallel == 1:
        del out["kv_unified"]
    if not has_swa:
        del out["swa_full"]
    return out


def _words(settings: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in settings.items())


def matching_records(records: list[Record], sha256: str, model_path: Path, where: Path, wanted: dict) -> list[Record]:
    """The measured records of ``where`` that are of this model file and have the fit's ``wanted``
    settings; GgufprofError when the results are of another model or none has those settings."""
    check_same_model(records, sha256, model_path, where, advice="--results takes a sweep of this model")
    mine = [r for r in records if r.status == "ok" and r.model.get("sha256") == sha256]
    if not mine:
        raise GgufprofError(f"--results {where}: no measured results of {model_path} (sha256 {sha256[:16]}…)")
    same = [r for r in mine if all(r.settings.get(k) == v for k, v in wanted.items())]
    if not same:
        held = sorted({_words({k: r.settings.get(k) for k in wanted}) for r in mine})
        raise GgufprofError(f"--results {where}: no results with the fit's {_words(wanted)} (speed is compared only at "
                            f"the same {', '.join(wanted)}); it holds {held[0]}"
                            + (f" and {len(held) - 1} other combination(s)" if len(held) > 1 else ""))
    return same


@dataclass(frozen=True)
class SpeedRatio:
    """``ratio`` is the median over the paired configurations whose samples results/noise.py trusts on
    both sides (``n_pairs`` of them); None when none can be trusted (``n_doubtful`` pairs rest on noisy
    samples or on fewer than two repetitions, ``doubts`` says why): a ratio of noise is not quoted."""

    ratio: float | None  # tg t/s (pair) / tg t/s (f16/f16)
    n_pairs: int
    n_doubtful: int = 0
    doubts: tuple[str, ...] = ()


def tg_ratio(records: list[Record], pair: tuple[str, str]) -> SpeedRatio | None:
    """``pair``'s generation speed against f16/f16, configuration by configuration (every other
    setting equal), from trusted samples only (the rule compare uses, results/noise.py
    ``unjudgeable``); None when no configuration was measured with both."""
    tg: dict[tuple, dict[tuple[str, str], Record]] = {}
    for r in records:
        if (r.measured.get("tg") or {}).get("tps_mean"):
            s = r.settings
            rest = tuple(sorted((k, str(v)) for k, v in s.items() if k not in ("cache_type_k", "cache_type_v")))
            tg.setdefault(rest, {})[(s.get("cache_type_k"), s.get("cache_type_v"))] = r
    trusted, doubts, n_doubtful = [], [], 0
    for by in tg.values():
        if pair not in by or F16 not in by:
            continue
        base, mine = by[F16], by[pair]
        why = unjudgeable(base.measured.get("tg"), mine.measured.get("tg"), (is_auto(base.settings), is_auto(mine.settings)))
        if why:
            n_doubtful += 1
            doubts += [w.replace("baseline:", "f16/f16:").replace("new:", f"{pair[0]}/{pair[1]}:") for w in why]
        else:
            trusted.append(mine.measured["tg"]["tps_mean"] / base.measured["tg"]["tps_mean"])
    if not trusted and not n_doubtful:
        return None
    return SpeedRatio(statistics.median(trusted) if trusted else None, len(trusted), n_doubtful,
                      tuple(dict.fromkeys(doubts)))
