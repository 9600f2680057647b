"""Copies of a real sweep's results with records edited, for tests that need a known difference
between two result sets (a slower build, a failed configuration) on real records."""

from __future__ import annotations

import copy
import json
import statistics

from ggufprof.results.store import load_records


def write_copy(src, dst, change=None, keep=None):
    """dst/results.jsonl: the records of src, each passed through ``change(dict)``; only ids in
    ``keep`` when given."""
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "results.jsonl", "w") as f:
        for rec in load_records(src):
            d = copy.deepcopy(rec.to_dict())
            if keep is not None and d["id"] not in keep:
                continue
            if change:
                change(d)
            f.write(json.dumps(d) + "\n")
    return dst


def scale_tg(factor):
    """A change: every tg sample (and their mean) times ``factor``."""
    def change(d):
        tg = d["measured"].get("tg")
        if tg:
            tg["samples_tps"] = [x * factor for x in tg["samples_tps"]]
            tg["tps_mean"] = statistics.fmean(tg["samples_tps"])
    return change


def set_samples(block, xs):
    """New rates for a speed block, with the times that go with them (the same tokens per repetition:
    the schema pairs each time with its rate)."""
    if block.get("samples_s"):
        tokens = block["samples_s"][0] * block["samples_tps"][0]
        block["samples_s"] = [tokens / x for x in xs]
    block["samples_tps"] = xs
    block["tps_mean"] = statistics.fmean(xs) if xs else None
    block["tps_stddev"] = statistics.stdev(xs) if len(xs) > 1 else 0.0  # as results/schema.py records it


def calm(d):
    """Speed samples no noise rule flags (1 % spread around the measured mean, the machine to itself):
    tests of the significance rules must not depend on how loaded this machine was during the sweep."""
    for test in ("pp", "tg"):
        block = d["measured"].get(test)
        if block and block["samples_tps"]:
            m = block["tps_mean"]
            set_samples(block, [m * 0.99, m, m * 1.01])
            block["samples_noise"] = [{**s, "others_cpu_share": 0.0} for s in block.get("samples_noise") or []]


def scale_spread(d):
    """Every speed block's samples spread by ±50 % around their mean (noisy by the 10 % rule: 71 %)."""
    for t in ("pp", "tg"):
        b = d["measured"].get(t)
        if b and b["samples_tps"]:
            m = b["tps_mean"]
            set_samples(b, [m * 0.5, m * 1.5])
