#!/usr/bin/env python3
"""Put a sweep's tokens/s beside llama-bench's for the same settings (a markdown table).

    python scripts/compare_with_llama_bench.py RESULTS_DIR LLAMA_BENCH.jsonl

Matches on cache type, n_gpu_layers (llama-bench's 99 = all), KV offload and depth; ggufprof's
depth-0 rows at the smallest context size of the sweep. Used for benchmarks/h100/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(results: Path, bench: Path) -> None:
    recs = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    n_layer_plus_output = max(r["settings"]["n_gpu_layers"] for r in recs)
    smallest = {}
    for r in recs:
        s = r["settings"]
        key = (s["cache_type_k"], s["n_gpu_layers"], s["offload_kqv"], s["depth"])
        if r["status"] == "ok" and (key not in smallest or s["ctx_size"] < smallest[key]["settings"]["ctx_size"]):
            smallest[key] = r
    lb = {}
    for line in bench.read_text().splitlines():
        b = json.loads(line)
        ngl = n_layer_plus_output if b["n_gpu_layers"] >= n_layer_plus_output else b["n_gpu_layers"]
        test = "pp" if b["n_prompt"] else "tg"
        lb[(b["type_k"], ngl, not b["no_kv_offload"], b["n_depth"], test)] = b
    print("| cache | -ngl | KV on | depth | ctx (ggufprof) | test | ggufprof t/s | llama-bench t/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = {"f16": 0, "q8_0": 1, "q4_0": 2}
    for key in sorted(smallest, key=lambda k: (-k[1], not k[2], k[3], order.get(k[0], 9))):
        r = smallest[key]
        for test in ("pp", "tg"):
            b = lb.get((*key, test))
            if b is None:
                continue
            o = r["measured"][test]
            n = o["n_tokens"]
            print(f"| {key[0]} | {key[1]} | {'GPU' if key[2] else 'host'} | {key[3]} | {r['settings']['ctx_size']} | "
                  f"{test}{n} | {o['tps_mean']:.1f} ± {o['tps_stddev']:.1f} | {b['avg_ts']:.1f} ± {b['stddev_ts']:.1f} | "
                  f"{o['tps_mean'] / b['avg_ts']:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
