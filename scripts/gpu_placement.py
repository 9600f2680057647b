#!/usr/bin/env python3
"""Placement on a real GPU: ``ggufprof estimate --total`` against llama.cpp's own numbers and a real load.

For one model and each set of placement flags (``-ngl``, ``-ncmoe``, ``-ot``, ...), cache type and
context, three figures per device:

1. ``llama-fit-params --fit-print on`` with the same flags (llama.cpp's no_alloc dry run: model /
   context / compute MiB per device, floored to whole MiB) beside ``ggufprof estimate --total``
   (weights / KV + state / compute, floored the same way): equal or not. llama.cpp's dry run leaves
   the weights it repacks for the CPU (CPU_REPACK, allocated at load on top of the mapped file) out
   of its host figure altogether, so the host row compares the weights without them and shows the
   repacked bytes apart: those are real memory llama.cpp's fit does not count.
2. With ``--real``: the model loaded and the context created for real by llama.cpp in a fresh
   process (measure/llama_ctx.py, the flags as ggufprof's own parser read them for the estimate,
   through llama_model_params as ggufprof passes them), the
   process's VRAM growth read from NVML after the load and after the context, beside ggufprof's
   predicted GPU weights buffer and GPU KV + compute. The difference is what llama.cpp does not
   log (the CUDA context at init is excluded: the baseline is taken after the backend is up).

Both tools get llama.cpp's common defaults (common/common.h: one sequence, swa_full off, flash
attention auto, n_ubatch 512), as ``--no-swa-full`` on ggufprof's side.

    python scripts/gpu_placement.py MODEL --flags "-ngl all -ncmoe 24" --flags "-ngl 20" \
        [-ct f16,q8_0] [--ctx 4096,32768] [--bin DIR] [--real] [--md FILE]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from compare_fit_params import DEFAULT_BIN, fit_print  # noqa: E402  -- one parser of llama-fit-params' table


REAL = r"""
import json, os, sys
from ggufprof.measure.llama_ctx import LlamaModel
from ggufprof.memory.placement import PlacementFlags
from ggufprof.measure.sampling import Vram
from ggufprof.memory.settings import with_defaults
import llama_cpp as L
args = json.loads(sys.argv[1])
L.llama_backend_init()
vram, pid = Vram(), os.getpid()
flags = PlacementFlags.from_dict(args["placement"])
before = vram.process_bytes(pid)
with LlamaModel(args["model"], placement=flags) as m:
    loaded = vram.process_bytes(pid)
    c = m.create_context(with_defaults("tools", ctx_size=args["ctx"], cache_type_k=args["type"],
                                       cache_type_v=args["type"]))
    ctx = vram.process_bytes(pid)
    m.free_context(c)
print(json.dumps({"load": loaded - before, "context": ctx - loaded}))
"""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


def estimate(model: str, ctx: int, t: str, flags: list[str]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = run([sys.executable, "-m", "ggufprof", "estimate", model, "-c", str(ctx), "-ctk", t, "-ctv", t, "--total",
               "--no-swa-full", *flags, "--json"])
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"ggufprof estimate failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout), secs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--flags", action="append", required=True, help="one placement, as llama.cpp flags (repeatable)")
    ap.add_argument("-ct", "--cache-types", default="f16,q8_0")
    ap.add_argument("--ctx", default="4096,32768")
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--real", action="store_true", help="also load and create each context for real (NVML)")
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    md = [f"model `{Path(args.model).name}`", "",
          "| flags | K/V | ctx | device | llama.cpp model / context / compute MiB | ggufprof weights (not "
          "repacked) / KV+state / compute MiB | same | VRAM growth load / context MiB (real) | predicted GPU weights / KV+compute MiB |",
          "|---|---|---|---|---|---|---|---|---|"]
    same_rows = rows = 0
    t_est = t_fit = 0.0
    for flag_text in args.flags:
        flags = shlex.split(flag_text)
        for t in args.cache_types.split(","):
            for ctx in (int(c) for c in args.ctx.split(",")):
                t0 = time.perf_counter()
                llama = fit_print(args.bin, args.model, ctx, t, t, None, flags)
                t_fit += time.perf_counter() - t0
                est, secs = estimate(args.model, ctx, t, flags)
                t_est += secs
                ours = {("Host" if d == "CPU" else d): v for d, v in est["total"].items()}
                real = ""
                gpu = next((d for d in ours if d.startswith("CUDA")), None)
                if args.real and gpu:
                    out = run([sys.executable, "-c", REAL, json.dumps({"model": args.model, "ctx": ctx, "type": t,
                                                                       "placement": est["placement"]["flags"]})])
                    if out.returncode == 0:
                        r = json.loads(out.stdout.strip().splitlines()[-1])
                        real = f"{r['load'] / MiB:.1f} / {r['context'] / MiB:.1f}"
                    else:
                        real = "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80]
                for dev, (m, c, k) in llama.items():
                    o = ours.get(dev)
                    # llama.cpp's dry run leaves weights it repacks (CPU_REPACK) out of its host "model"
                    # figure altogether: compared without them, and shown apart
                    mine = ((o["weights_bytes"] - o.get("repack_bytes", 0)) // MiB,
                            (o["kv_bytes"] + o["recurrent_bytes"]) // MiB, o["compute_bytes"] // MiB) if o else None
                    same = mine == (m, c, k)
                    rows += 1
                    same_rows += same
                    pred = ""
                    if dev == gpu:
                        pred = (f"{o['weights_bytes'] / MiB:.1f} / "
                                f"{(o['kv_bytes'] + o['recurrent_bytes'] + o['compute_bytes']) / MiB:.1f}")
                    md.append(f"| `{flag_text}` | {t} | {est['n_ctx']} | {dev} | {m} / {c} / {k} | "
                              + (" / ".join(map(str, mine)) if mine else "-")
                              + (f" (+{o['repack_bytes'] / MiB:.0f} repacked)" if o and o.get("repack_bytes") else "")
                              + f" | {'yes' if same else '**no**'} | {real if dev == gpu else ''} | {pred} |")
                print(md[-1], flush=True)
    md += ["", f"device rows identical: {same_rows} of {rows}; llama-fit-params {t_fit:.1f} s, "
               f"ggufprof estimate --total {t_est:.1f} s (each a fresh process per configuration)"]
    print("\n".join(md))
    if args.md:
        args.md.write_text("\n".join(md) + "\n")
    return 0 if same_rows == rows else 1


if __name__ == "__main__":
    sys.exit(main())
