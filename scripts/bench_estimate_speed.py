#!/usr/bin/env python3
"""``ggufprof estimate --total`` against ``llama-fit-params --fit-print on`` for one configuration:
each tool as a fresh process, in paired rounds (ABBA: ggufprof, llama.cpp, llama.cpp, ggufprof),
medians with their range and the ratio of the medians.

    python scripts/bench_estimate_speed.py MODEL [--bin DIR] [-c 4096] [--rounds 10] [-- FLAGS...]

Both tools get the same context and placement flags (FLAGS, llama.cpp's spelling: -ngl 99, --rpc
..., -ot ...). ``--bin``: the folder with llama-fit-params (default: the tools build of
scripts/build_llama_tools.sh); ggufprof loads the same libraries there (``--llama-lib``) when the
folder has them, so both run the same llama.cpp. What each tool does: llama-fit-params loads the
model with llama.cpp's dry run and prints its per-device memory; ggufprof reads the header, asks
llama.cpp's dry run (one worker process) for the compute buffers and prints the whole footprint.

ggufprof runs as a user's Python runs it: with its bytecode cache (PYTHONDONTWRITEBYTECODE, which
some CI images set, is unset for it; compiling ggufprof's sources at every start cost ~0.17 s).
Then one step of ``fit``'s search, timed in this process as ``fit`` takes it: one more context
of llama.cpp's dry run in the worker the search keeps (measure/dry_run.py DryRun.ask), against the
one configuration llama-fit-params answers per process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = Path.home() / ".cache/ggufprof/llama-tools-0.3.36/build/bin"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {(out.stderr or out.stdout)[-800:]}")
    return secs


def summary(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f} s (range {min(xs):.3f}-{max(xs):.3f}, n={len(xs)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN, help="folder with llama-fit-params")
    ap.add_argument("-c", "--ctx-size", default="4096")
    ap.add_argument("--rounds", type=int, default=10, help="ABBA rounds (each runs both tools twice)")
    argv = sys.argv[1:]
    flags = argv[argv.index("--") + 1:] if "--" in argv else []  # llama.cpp's flags, passed through as given
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.flags = flags
    lib = ["--llama-lib", str(args.bin)] if any(args.bin.glob("libllama*")) else []
    ours = [sys.executable, "-m", "ggufprof", "estimate", args.model, "-c", args.ctx_size, "--total", *lib, *args.flags]
    theirs = [str(args.bin / "llama-fit-params"), "-m", args.model, "-c", args.ctx_size, "--fit-print", "on",
              *args.flags]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    timed(ours, env), timed(theirs)  # warm the page cache and the Python bytecode cache
    a: list[float] = []
    b: list[float] = []
    for _ in range(args.rounds):
        a.append(timed(ours, env))
        b.append(timed(theirs))
        b.append(timed(theirs))
        a.append(timed(ours, env))
    print(f"model {Path(args.model).name}, -c {args.ctx_size} {' '.join(args.flags)}".rstrip())
    print(f"ggufprof estimate --total   {summary(a)}")
    print(f"llama-fit-params --fit-print {summary(b)}")
    print(f"ratio of medians ggufprof/llama.cpp: {statistics.median(a) / statistics.median(b):.2f}")
    steps = fit_steps(args, lib)
    print(f"one fit step (a context in the kept worker) {summary(steps)}")
    print(f"ratio of medians fit step/llama-fit-params: {statistics.median(steps) / statistics.median(b):.3f}")
    return 0


def fit_steps(args: argparse.Namespace, lib: list[str]) -> list[float]:
    """Contexts of llama.cpp's dry run in one kept worker, 256 cells apart as fit steps, each timed
    with the reading of its reply (what a step of ``fit``'s search waits for)."""
    sys.path.insert(0, str(ROOT))
    from typer.main import get_command

    from ggufprof.cli import PLACEMENT_OPTIONS, app
    from ggufprof.flags import placement_flags
    from ggufprof.measure.dry_run import DryRun
    from ggufprof.measure.workers import use_llama_lib
    from ggufprof.memory.settings import with_defaults

    use_llama_lib(lib[1] if lib else None)
    given = get_command(app).commands["estimate"].make_context("estimate", [args.model, *args.flags]).params
    flags = placement_flags(given["n_gpu_layers"] or "all", repack=given["repack"],
                            **{name: given[name] for name, _, _ in PLACEMENT_OPTIONS})  # as estimate --total
    out = []
    with DryRun(Path(args.model), placement=flags) as dry:
        base = int(args.ctx_size)
        for i in range(4 * args.rounds):
            s = with_defaults("tools", ctx_size=base + 256 * (i % 8))
            t0 = time.perf_counter()
            dry.ask(s)
            out.append(time.perf_counter() - t0)
    return out


if __name__ == "__main__":
    sys.exit(main())
