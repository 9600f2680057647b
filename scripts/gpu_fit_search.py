#!/usr/bin/env python3
"""``ggufprof fit --verify`` searching the placement on a real GPU, beside llama.cpp's own fit.

For each model, context, cache type and VRAM budget: llama-fit-params (common/fit.cpp) given
``--fit-target`` = the free memory it reads - budget, and ``ggufprof fit --vram BUDGET --margin 0 -c N
--verify``, which searches -ngl (and, for MoE models, -ncmoe) and then creates its answer for real.
Per answer: the placement, its CUDA0 total by the exact prediction (``estimate --total`` of that
placement) against the budget, and for ggufprof's the next step's total and the measured VRAM
growth of the real run (NVML, after a decode); each tool's wall time (a fresh process).

    python scripts/gpu_fit_search.py --bin DIR --case MODEL:CTX:BUDGET_MIB [--case ...] [-ct f16,q8_0]
                                     [--margin MIB] [--md FILE]

"within?" compares an answer's predicted CUDA0 total with the budget minus the margin (what both
tools fit the buffers into); "fits?" is ggufprof --verify's verdict: the process's VRAM growth
after a decode (buffers and the GPU's runtime allocations, which no buffer states) within the
whole budget.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_fit_placement import ANSWER, llama_placement  # noqa: E402  (one reader of llama.cpp's answer line)

FREE = re.compile(r"vs\. (\d+) MiB of free device memory")


def timed(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return out, time.perf_counter() - t


def ggufprof(lib: Path, *args: str) -> tuple[object, float]:
    out, secs = timed([sys.executable, "-m", "ggufprof", *args, "--llama-lib", str(lib), "--json"])
    if out.returncode not in (0, 1):
        raise SystemExit(f"ggufprof {' '.join(args)} failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout), secs


def cuda0_total(lib: Path, model: str, ctx: int, t: str, placement: list[str]) -> int:
    d, _ = ggufprof(lib, "estimate", model, "-c", str(ctx), "-ctk", t, "-ctv", t, "--total", *placement)
    return d["total"]["CUDA0"]["total_bytes"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, required=True, help="llama.cpp build with llama-fit-params and its libraries")
    ap.add_argument("--case", action="append", required=True, help="MODEL:CTX:BUDGET_MIB")
    ap.add_argument("-ct", "--cache-types", default="f16,q8_0")
    ap.add_argument("--margin", type=int, default=0, help="MiB both tools keep free of the budget "
                    "(llama.cpp's --fit-target, ggufprof's --margin); 0: both fit the whole budget")
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    lines = [f"margin {args.margin} MiB", "", "| model | -c | K/V | budget MiB | llama-fit-params | CUDA0 MiB | within? | s | ggufprof fit | CUDA0 MiB | "
             "within? | next step MiB | VRAM growth MiB (verify) | fits? | s |", "|" + "---|" * 15]
    for case in args.case:
        model, ctx, budget = case.rsplit(":", 2)
        ctx, budget = int(ctx), int(budget)
        for t in args.cache_types.split(","):
            try:
                lines.append(one(args.bin, model, ctx, budget, t, args.margin))
            except Exception as e:  # noqa: BLE001 -- a failed case is a row saying why, the others still run
                lines.append(f"| {Path(model).stem} | {ctx} | {t} | {budget} | failed: {str(e)[-120:]} |" + " |" * 10)
            print(lines[-1], flush=True)
    if args.md:
        args.md.write_text("\n".join(lines) + "\n")
    return 0


def one(lib: Path, model: str, ctx: int, budget: int, t: str, margin: int) -> str:
    """One table row: both tools' answers for this budget, each keeping ``margin`` MiB free of it."""
    probe, _ = timed([str(lib / "llama-fit-params"), "-m", model, "-c", "256", "-fitt", "0", "-v"])
    free = int(FREE.search(probe.stderr).group(1))
    lf, lsecs = timed([str(lib / "llama-fit-params"), "-m", model, "-c", str(ctx), "-ctk", t, "-ctv", t,
                       "-fitt", str(free - budget + margin), "-v"])
    seen = FREE.search(lf.stderr)
    limit = (int(seen.group(1)) if seen else free) * MiB - (free - budget + margin) * MiB  # for the buffers
    m = ANSWER.search(lf.stdout)
    if m:
        lp = llama_placement(m.group(1))
        ltot = cuda0_total(lib, model, ctx, t, lp)
        l_cells = [" ".join(lp)[:60], f"{ltot / MiB:.1f}", "yes" if ltot <= limit else "**NO**"]
    else:
        l_cells = ["(none: " + (lf.stderr.strip().splitlines() or ["?"])[-1][-50:] + ")", "-", "-"]
    rows, gsecs = ggufprof(lib, "fit", model, "--vram", f"{limit + margin * MiB}B", "--margin", f"{margin}MiB", "-c", str(ctx),
                           "-ct", t, "--verify")
    (row,) = rows
    if row["ctx_size"]:
        cmd = shlex.split(row["command"]["llama-server"])  # the -ot patterns are quoted for a shell
        gp = cmd[cmd.index("-ngl"):cmd.index("--fit")]
        gtot = cuda0_total(lib, model, ctx, t, gp)
        nxt = (row.get("next_step_total_bytes") or {}).get("CUDA0")
        v = row.get("verify") or {}
        g_cells = [" ".join(gp), f"{gtot / MiB:.1f}", "yes" if gtot <= limit else "**NO**",
                   f"{nxt / MiB:.1f}" + (" (over)" if nxt > limit else " (**under**)") if nxt else "-",
                   f"{v['vram_growth'] / MiB:.1f}" if v.get("vram_growth") is not None else "-",
                   {True: "yes", False: "**NO**"}.get(v.get("fits"), "-")]
    else:
        g_cells = ["nothing fits: " + str(row.get("note", ""))[:50], "-", "-", "-", "-", "-"]
    return (f"| {Path(model).stem} | {ctx} | {t} | {budget} | {l_cells[0]} | {l_cells[1]} | {l_cells[2]} | "
            f"{lsecs:.2f} | " + " | ".join(g_cells) + f" | {gsecs:.2f} |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
