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
