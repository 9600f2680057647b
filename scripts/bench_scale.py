#!/usr/bin/env python3
"""``results``, ``report`` and ``compare`` over many records: wall time and peak RSS of each.

Takes one real record (a tiny sweep of the llama-gqa fixture, run here, or ``--from DIR``), makes
N distinct configurations of it (context size, depth, cache types, threads, ... vary, the id follows
the settings as a sweep writes it; speed samples are scaled a little so the numbers differ), writes
them as a baseline and a "new" results directory (the new one's samples moved by a few percent), then
runs each command as its own process (``results DIR``, ``report DIR``, ``compare BASE NEW``, their
output to /dev/null or the report directory) and reports its wall time, its CPU time (user + system:
what the wall time is on an idle machine; this VM's 2 cores are shared) and its peak resident memory
(``wait4``'s ru_maxrss: the process and the children it waited for).

    python scripts/bench_scale.py [-n 100000] [--from DIR] [--keep DIR]

``--keep DIR`` writes the directories there and keeps them; a second run with the same DIR and N
reuses them.

Only time and memory are reported; the commands' exit codes are printed, not judged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ggufprof.results.run_settings import RunSettings  # noqa: E402

CACHE_TYPES = [("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0"), ("q8_0", "q4_0"), ("q5_0", "q5_0")]


def real_record(src: Path | None, work: Path) -> dict:
    """The first ok record of ``src``, or of a tiny sweep of the llama-gqa fixture run now."""
    if src is None:
        src = work / "seed"
        subprocess.run([sys.executable, "-m", "ggufprof", "sweep", str(ROOT / "fixtures" / "llama-gqa.gguf"),
                        "--out", str(src), "-ct", "f16", "-c", "512", "-p", "8", "-n", "2", "-r", "3", "-t", "2"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    for line in (src / "results.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d.get("status") == "ok":
            return d
    raise SystemExit(f"{src}: no ok record to copy")


def variant(base: dict, i: int, scale: float) -> dict:
    """Record ``i``: distinct settings (so a distinct configuration), samples scaled by ``scale``."""
    d = json.loads(json.dumps(base))
    s = d["settings"]
    k, v = CACHE_TYPES[i % len(CACHE_TYPES)]
    rest = i // len(CACHE_TYPES)
    s.update(cache_type_k=k, cache_type_v=v, ctx_size=256 * (1 + rest % 400), depth=8 * ((rest // 400) % 50),
             threads=1 + (rest // 20000) % 8, n_prompt=8 + rest // 160000)
    d["id"] = RunSettings.from_dict(s).id
    for test in ("pp", "tg"):
        block = d["measured"].get(test) or {}
        block["samples_tps"] = [x * scale for x in block.get("samples_tps", [])]
        if block["samples_tps"]:
            block["tps_mean"] = sum(block["samples_tps"]) / len(block["samples_tps"])
    return d


def write_results(base: dict, n: int, out: Path, rng: random.Random, shift: float) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(variant(base, i, shift * rng.uniform(0.97, 1.03)), sort_keys=True) + "\n")
    return (out / "results.jsonl").stat().st_size


def _lines(path: Path) -> int:
    if not path.exists():
        return -1
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def measure(cmd: list[str]) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak RSS bytes, exit code) of one command run as its own process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace").strip().splitlines()
    if p.returncode not in (0, 1):
        print(f"  {' '.join(cmd[3:5])}: exit {p.returncode}: {err[-1] if err else ''}", file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="records per results directory (default 100000)")
    ap.add_argument("--from", dest="src", type=Path, help="a results directory to take the record from")
    ap.add_argument("--keep", type=Path, help="write the generated directories here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ggufprof-scale-") as tmp:
        work = args.keep or Path(tmp)
        t = time.perf_counter()
        if all(_lines(work / d / "results.jsonl") == args.n for d in ("base", "new")):
            print(f"reusing {work}/base and {work}/new")
        else:
            base = real_record(args.src, Path(tmp))
            rng = random.Random(18)
            write_results(base, args.n, work / "base", rng, 1.0)
            write_results(base, args.n, work / "new", rng, 0.98)
        size = (work / "base" / "results.jsonl").stat().st_size
        print(f"{args.n:,} records per directory, {size / 2**20:.0f} MiB of results.jsonl each "
              f"(ready in {time.perf_counter() - t:.0f} s)")
        py = [sys.executable, "-m", "ggufprof"]
        runs = {"results": py + ["results", str(work / "base")],
                "report": py + ["report", str(work / "base"), "--out", str(work / "report")],
                "compare": py + ["compare", str(work / "base"), str(work / "new")]}  # the gate's table
        print(f"{'command':<10} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'exit':>5}   (load {os.getloadavg()[0]:.1f})")
        for name, cmd in runs.items():
            wall, cpu, rss, code = measure(cmd)
            print(f"{name:<10} {wall:8.1f} {cpu:8.1f} {rss / 2**20:13.0f} {code:5d}", flush=True)


if __name__ == "__main__":
    main()
