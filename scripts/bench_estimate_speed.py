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

``--profile``: then where a cold ``estimate --total`` spends its time, in rounds of fresh processes:
the probe worker alone (its start to its first reply: Python, the bindings, llama.cpp's backends
initialised; one dry-run load; one context), and the command with each worker request timed
(sent, answered) from its start and the end of its own imports. Nothing there passes or fails: it
says where to look.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--profile", action="store_true", help="then the parts of a cold estimate --total")
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
    if args.profile:
        profile(args, lib, env)
    return 0


# A fresh interpreter running ggufprof's entry point with every worker request timed (stderr, JSON lines).
TRACED = r"""
import json, sys, time
T0 = time.perf_counter()
from ggufprof.measure import workers
ask = workers.Worker.ask
def traced(self, request, *a, **k):
    t = time.perf_counter() - T0
    reply = ask(self, request, *a, **k)
    print(json.dumps({"op": request.get("op"), "sent": t, "answered": time.perf_counter() - T0}), file=sys.stderr)
    return reply
workers.Worker.ask = traced
import ggufprof.cli
print(json.dumps({"op": "imports", "answered": time.perf_counter() - T0}), file=sys.stderr)
from ggufprof import launch
sys.argv = ["ggufprof", *sys.argv[1:]]
launch.main()
"""


def profile(args: argparse.Namespace, lib: list[str], env: dict[str, str]) -> None:
    """The parts of a cold ``estimate --total`` (the worker alone, the command's requests), medians."""
    from ggufprof.measure.workers import PROBE, Worker

    from ggufprof.results.llama_log import parse_log

    placement = placement_of(args)
    rows: dict[str, list[float]] = {}
    logged: dict[str, str] = {}  # the model buffers the dry-run load logs (0 MiB each: nothing allocated)

    def add(name: str, secs: float) -> None:
        rows.setdefault(name, []).append(secs)

    for _ in range(args.rounds):
        t0 = time.perf_counter()
        w = Worker(PROBE, llama_lib=Path(lib[1]) if lib else None)
        try:
            for op, request in (("start, to its first reply", {"op": "devices", "rpc": list(placement.rpc)}),
                                ("one dry-run load", {"op": "load", "model": args.model, "dry_run": True,
                                                      "placement": placement.to_dict()}),
                                ("one context", {"op": "context", "settings": {"ctx_size": int(args.ctx_size)}})):
                reply = w.ask(request)
                if not reply.ok:
                    sys.exit(f"the probe worker refused {op}")
                if request["op"] == "load":
                    logged = parse_log(reply.result["log"]).model_buffers_mib
                add(f"worker alone: {op}", time.perf_counter() - t0)
                t0 = time.perf_counter()
        finally:
            w.close()
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", TRACED, "estimate", args.model, "-c", args.ctx_size, "--total",
                              *lib, *args.flags], capture_output=True, text=True, timeout=600, env=env)
        add("estimate --total: whole process", time.perf_counter() - t0)
        if out.returncode != 0:
            sys.exit(f"estimate --total failed: {out.stderr[-800:]}")
        seen: dict[str, int] = {}
        for line in (x for x in out.stderr.splitlines() if x.startswith("{")):
            r = json.loads(line)
            n = seen[r["op"]] = seen.get(r["op"], 0) + 1
            name = r["op"] + (f" #{n}" if n > 1 else "")
            if "sent" in r:
                add(f"  request {name}: sent at", r["sent"])
                add(f"  request {name}: took", r["answered"] - r["sent"])
            else:
                add(f"  {name} done at", r["answered"])
    print(f"the dry-run load's model buffers (by buffer type): {', '.join(logged)}")
    print(f"a cold estimate --total, in parts (median, range; {args.rounds} rounds of fresh processes):")
    for name, xs in rows.items():
        print(f"  {name:<46} {statistics.median(xs):7.3f} s ({min(xs):.3f}-{max(xs):.3f})")


def placement_of(args: argparse.Namespace):
    """FLAGS as ``estimate --total`` reads them (its own option parser; -ngl all when not given)."""
    sys.path.insert(0, str(ROOT))
    from typer.main import get_command

    from ggufprof.cli import PLACEMENT_OPTIONS, app
    from ggufprof.flags import placement_flags

    given = get_command(app).commands["estimate"].make_context("estimate", [args.model, *args.flags]).params
    return placement_flags(given["n_gpu_layers"] or "all", repack=given["repack"],
                           **{name: given[name] for name, _, _ in PLACEMENT_OPTIONS})


def fit_steps(args: argparse.Namespace, lib: list[str]) -> list[float]:
    """Contexts of llama.cpp's dry run in one kept worker, 256 cells apart as fit steps, each timed
    with the reading of its reply (what a step of ``fit``'s search waits for)."""
    sys.path.insert(0, str(ROOT))
    from ggufprof.measure.dry_run import DryRun
    from ggufprof.measure.workers import use_llama_lib
    from ggufprof.memory.settings import with_defaults

    use_llama_lib(lib[1] if lib else None)
    out = []
    with DryRun(Path(args.model), placement=placement_of(args)) as dry:
        base = int(args.ctx_size)
        for i in range(4 * args.rounds):
            s = with_defaults("tools", ctx_size=base + 256 * (i % 8))
            t0 = time.perf_counter()
            dry.ask(s)
            out.append(time.perf_counter() - t0)
    return out


if __name__ == "__main__":
    sys.exit(main())
