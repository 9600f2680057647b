"""Load sweep results back, for reports and notebooks: ``load_records`` (plain records) and
``load_dataframe`` (pandas, one row per configuration with dotted column names)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import GgufprofError
from .schema import Record, flatten, iter_records


def results_file(path: str | Path) -> Path:
    p = Path(path)
    f = p / "results.jsonl" if p.is_dir() else p
    if not f.exists():
        raise GgufprofError(f"{p}: no results.jsonl here (run `ggufprof sweep MODEL --out {p}` first)")
    return f


def load_records(path: str | Path) -> list[Record]:
    try:
        return list(iter_records(results_file(path)))
    except ValueError as e:
        raise GgufprofError(str(e)) from None


def load_dataframe(*paths: str | Path):
    """All records of one or more result directories (or JSONL files) as a pandas DataFrame.

    Columns are the flattened record (``settings.ctx_size``, ``measured.tg.tps_mean``, ...) plus
    ``source`` (the directory it came from); raw samples stay lists."""
    import pandas as pd

    rows = []
    for p in paths:
        for rec in load_records(p):
            row = flatten(rec.to_dict())
            for key in ("measured.pp.samples_tps", "measured.tg.samples_tps", "measured.pp.samples_s",
                        "measured.tg.samples_s"):
                if key in row:
                    row[key] = json.loads(row[key])
            row["source"] = str(p)
            rows.append(row)
    return pd.DataFrame(rows)
