#!/usr/bin/env python3
"""ggufprof against llama.cpp's own fit (``llama-fit-params``, tools/fit-params, built from the
vendored source), on the same model, libraries, margin and cache types. Two tables:

1. **Memory per device**: ``llama-fit-params --fit-print on`` (model / context / compute MiB per
   device, from the same no_alloc dry run, floored to whole MiB) beside ``ggufprof estimate --total``.
2. **Largest context**: llama.cpp's ``--fit`` answer for ``--fit-target MARGIN`` (its budget is the
   memory it reads as free -- the GPU's free memory, or total host memory on a CPU-only build) beside
   ``ggufprof fit`` given that same figure as its budget and the same margin, and the predicted total
   of llama.cpp's answer against the limit (budget - margin): whether its answer would fit.

    python scripts/compare_fit_params.py MODEL [--bin DIR] [--margins MIB,...] [-ct f16,q8_0,q4_0]
                                         [-ngl N|all] [--ctx 4096,0] [--md FILE]

Both get llama.cpp's common defaults (common/common.h: n_batch 2048, n_ubatch 512, one sequence,
swa_full off, flash attention auto), so ggufprof runs with ``--no-swa-full``.

A margin of about (memory llama.cpp sees) - (a few hundred MiB) makes a small model tight enough to
need fitting; `--margins auto` picks three such margins from the model's footprint.
llama.cpp's fit is given ``--fit-ctx 256`` (its smallest step) so that both search the same range.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = Path.home() / ".cache/ggufprof/llama-tools-0.3.36/build/bin"
BUDGET_LINE = re.compile(r"projected to use (\d+) MiB of (?:device|host) memory vs\. (\d+) MiB of (free device|total host) memory")
ANSWER = re.compile(r"^-c (\d+) -ngl (-?\d+)", re.M)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def ggufprof(*args: str) -> dict | list:
    out = run([sys.executable, "-m", "ggufprof", *args, "--json"])
    if out.returncode != 0:
        raise SystemExit(f"ggufprof {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def fit_print(bin_dir: Path, model: str, ctx: int, tk: str, tv: str, ngl: str | None,
              extra: list[str] | tuple[str, ...] = ()) -> dict[str, tuple[int, int, int]]:
    """llama-fit-params --fit-print's rows: {device: (model, context, compute MiB)}; ``extra``: more
    llama.cpp flags (placement)."""
    cmd = [str(bin_dir / "llama-fit-params"), "-m", model, "--fit-print", "on", "-c", str(ctx), "-ctk", tk, "-ctv", tv]
    cmd += (["-ngl", ngl] if ngl else []) + list(extra)
    out = run(cmd)
    rows = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            rows[parts[0]] = tuple(int(p) for p in parts[1:])
    if not rows:
        raise SystemExit(f"llama-fit-params --fit-print gave nothing: {out.stderr.strip()[-500:]}")
    return rows


def llama_fit(bin_dir: Path, model: str, margin_mib: int, tk: str, tv: str, ngl: str | None) -> dict:
    cmd = [str(bin_dir / "llama-fit-params"), "-m", model, "-fitt", str(margin_mib), "-fitc", "256",
           "-ctk", tk, "-ctv", tv, "-v"] + (["-ngl", ngl] if ngl else [])
    t = time.perf_counter()
    out = run(cmd)
    secs = time.perf_counter() - t
    b = BUDGET_LINE.search(out.stderr)
    a = ANSWER.search(out.stdout)
    return {"budget_mib": int(b.group(2)) if b else None, "host": bool(b and b.group(3) == "total host"),
            "ctx": int(a.group(1)) if a else 0, "ok": out.returncode == 0 and a is not None, "seconds": secs,
            "reason": "" if a else (out.stderr.strip().splitlines() or ["no output"])[-1]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN, help="folder with llama-fit-params")
    ap.add_argument("--margins", default="auto", help="MiB, comma-separated, or auto")
    ap.add_argument("-ct", "--cache-types", default="f16,q8_0,q4_0")
    ap.add_argument("-ngl", "--n-gpu-layers", default=None)
    ap.add_argument("--ctx", default="4096,0", help="contexts for the memory table (0: the training context)")
    ap.add_argument("--md", type=Path, help="also write the tables as markdown here")
    ap.add_argument("--memory-only", action="store_true", help="only the memory table (e.g. a model whose "
                    "training context is a single 256-cell step, where there is nothing to search)")
    args = ap.parse_args()
    model, ngl, types = args.model, args.n_gpu_layers, args.cache_types.split(",")
    ngl_args = (["-ngl", ngl] if ngl else []) + ["--no-swa-full"]  # llama.cpp's common default
    md: list[str] = [f"model `{Path(model).name}`" + (f", -ngl {ngl}" if ngl else "")]

    # 1. memory per device
    md += ["", "| K/V | ctx | device | llama.cpp model / context / compute MiB | ggufprof weights / KV+state / compute MiB | same |",
           "|---|---|---|---|---|---|"]
    same_all = True
    for t in types:
        for ctx in (int(c) for c in args.ctx.split(",")):
            llama = fit_print(args.bin, model, ctx, t, t, ngl)
            est = ggufprof("estimate", model, "-c", str(ctx), "-ctk", t, "-ctv", t, "--total", *ngl_args)
            ours = {("Host" if d == "CPU" else d): v for d, v in est["total"].items()}
            for dev, (m, c, k) in llama.items():
                o = ours.get(dev)
                mine = (o["weights_bytes"] // MiB, (o["kv_bytes"] + o["recurrent_bytes"]) // MiB,
                        o["compute_bytes"] // MiB) if o else None
                same = mine == (m, c, k)
                same_all &= same
                md.append(f"| {t} | {est['n_ctx']} | {dev} | {m} / {c} / {k} | "
                          + (" / ".join(map(str, mine)) if mine else "-") + f" | {'yes' if same else '**no**'} |")
    print("\n".join(md))

    if args.memory_only:
        print(f"\nmemory tables identical: {same_all}")
        if args.md:
            args.md.write_text("\n".join(md) + "\n")
        return 0

    # 2. the largest context under a budget
    if args.margins == "auto":
        probe = llama_fit(args.bin, model, 0, types[0], types[0], ngl)
        est = ggufprof("estimate", model, "-c", "0", "-ctk", types[0], "-ctv", types[0], "--total", *ngl_args)
        dev = "CPU" if probe["host"] else next(d for d in est["total"] if d != "CPU")
        full = est["total"][dev]["total_bytes"] // MiB
        weights = est["total"][dev]["weights_bytes"] // MiB
        seen = probe["budget_mib"] or 0
        # limits at 25, 50 and 90 % of the way from the weights to the full-context total
        margins = [seen - (weights + (full - weights) * p // 100) for p in (25, 50, 90)]
    else:
        margins = [int(m) for m in args.margins.split(",")]
    lines = ["", "| K/V | margin MiB | memory llama.cpp sees MiB | llama.cpp -c | its predicted total vs limit | "
             "ggufprof ctx | ggufprof total | next step |", "|---|---|---|---|---|---|---|---|"]
    t_ours = 0.0
    for margin in margins:
        for t in types:
            lf = llama_fit(args.bin, model, margin, t, t, ngl)
            if lf["budget_mib"] is None:
                lines.append(f"| {t} | {margin} | ? | failed: {lf['reason']} | | | | |")
                continue
            flag = "--memory" if lf["host"] else "--vram"
            t0 = time.perf_counter()
            (ours,) = ggufprof("fit", model, flag, f"{lf['budget_mib']}MiB", "--margin", f"{margin}MiB", "-ct", t, *ngl_args)
            t_ours += time.perf_counter() - t0
            dev = "CPU" if lf["host"] else "CUDA0"
            limit = (lf["budget_mib"] - margin) * MiB
            theirs = "-"
            if lf["ok"]:
                est = ggufprof("estimate", model, "-c", str(lf["ctx"]), "-ctk", t, "-ctv", t, "--total", *ngl_args)
                tot = est["total"][dev]["total_bytes"]
                theirs = f"{tot / MiB:.1f} MiB: {'over' if tot > limit else 'under'} by {abs(tot - limit) / MiB:.1f} MiB"
            ours_dev = next((d for d in ours["devices"] if d["device"] == dev), None)
            nxt = ours["next_step_total_bytes"].get(dev)
            lines.append(f"| {t} | {margin} | {lf['budget_mib']} | {lf['ctx'] if lf['ok'] else 'failed: ' + lf['reason']} | "
                         f"{theirs} | {ours['ctx_size']} | "
                         f"{ours_dev['total_bytes'] / MiB:.1f} MiB" if ours_dev else "-")
            lines[-1] += f" | {nxt / MiB:.1f} MiB |" if nxt else " | - |"
    print("\n".join(lines))
    print(f"\nmemory tables identical: {same_all}; ggufprof fit took {t_ours:.2f} s for {len(margins) * len(types)} answers")
    if args.md:
        args.md.write_text("\n".join(md + lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
