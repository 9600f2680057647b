#!/usr/bin/env python3
"""``ggufprof fit`` beside llama.cpp's own fit (``llama-fit-params``, common/fit.cpp) when the placement
must move: the same model, context, cache type and per-device budget on llama.cpp rpc-servers (one and
two devices, dense and MoE). For each: both answers (-ngl / -ncmoe / -ts / -ot), whether each is within
the budget by the exact prediction (``ggufprof estimate --total`` of that answer: llama.cpp's own dry
run for the compute buffers, the prediction for the rest), and both tools' wall time (each a fresh
process, as a user runs it). Then ``estimate --total`` against ``llama-fit-params --fit-print`` for one
configuration (median of 5).

    python scripts/bench_fit_placement.py [--bin DIR] [--md FILE] [--shaped]

``--shaped`` adds a second table on Qwen3-30B-A3B's shape (scripts/make_shaped.py: the real header,
zero weights, a sparse file written once into ~/.cache/ggufprof/shaped/), where a dry-run load costs
~0.3 s instead of ~10 ms, so the search's loads, not Python, set its time.

The budget: llama-fit-params reads each device's free memory (an rpc-server reports host RAM) and
keeps ``--fit-target`` MiB of it free; it is given free - budget, its log says the free memory it
read, and ggufprof is given exactly free - target with ``--margin 0``, so both fit the same bytes.
Two rpc-servers (three with --shaped) are started on 127.0.0.1 and stopped at the end. llama-fit-params works in whole
MiB, so budgets here are MiB (the models are llama.cpp's tiny test models).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = Path.home() / ".cache/ggufprof/llama-tools-0.3.36/build/bin"
SUITE = Path.home() / ".cache/ggufprof/archs-0.3.36"
FREE = re.compile(r"(\d+) MiB of free device memory")
FREE_DEV = re.compile(r"\|\s+- (RPC\d+) \((\S+)\)\s+\|\s+\d+ = (\d+) \+")
ANSWER = re.compile(r"^(-c \d+ .*)$", re.M)

HEADER = """# fit beside llama-fit-params on rpc-servers (scripts/bench_fit_placement.py)

Two ggml-rpc-servers on 127.0.0.1 (three for the 30B shape's three-device cases; this 2-core VM, shared), the pinned llama.cpp tools build; both tools given the same per-device budget (llama-fit-params: --fit-target = the free memory it reads - budget; ggufprof fit: that many bytes, --margin 0), the same -c and cache type, and neither a -ts: each chooses its own split (integer layer counts per device) and may move part of a layer (-ot of part of one layer's FFN, to the host or the next device). "on devices MiB": the answer's totals on the rpc-servers (weights, KV, compute buffers) by the exact prediction (estimate --total of that answer: llama.cpp's dry run for the compute buffers); "within?": each device's total against its budget; "next step over?": ggufprof's next step (one more layer, whole or in part, or one fewer expert layer on the host) over a budget by the same prediction; "loads": the dry-run loads of the model ggufprof's search took (--json's dry_run_loads); "≥?": ggufprof keeps more weight and cache bytes on the devices than llama-fit-params, or as many and at least as many bytes in all ("yes"), as many with smaller compute buffers there ("tie"), or fewer ("**NO**"). Wall time: each tool as a fresh process.
"""

# (label, model, context, cache type, servers, budget MiB per server)
CASES = [
    ("dense, 1 device", ROOT / "fixtures/gemma3-swa.gguf", 8192, "f16", 1, (12,)),
    ("dense, 1 device", ROOT / "fixtures/gemma3-swa.gguf", 8192, "q8_0", 1, (11,)),
    ("dense, 1 device", SUITE / "llama-dense.gguf", 8192, "f16", 1, (20,)),
    ("dense, 2 devices", ROOT / "fixtures/gemma3-swa.gguf", 8192, "f16", 2, (7, 7)),
    ("dense, 2 devices", ROOT / "fixtures/gemma3-swa.gguf", 8192, "f16", 2, (10, 6)),
    ("MoE, 1 device", SUITE / "qwen3moe-moe.gguf", 4096, "f16", 1, (20,)),
    ("MoE, 1 device", SUITE / "qwen3moe-moe.gguf", 4096, "f16", 1, (18,)),
    ("MoE, 1 device", SUITE / "llama4-moe.gguf", 4096, "f16", 1, (30,)),
    ("MoE, 2 devices", SUITE / "qwen3moe-moe.gguf", 4096, "f16", 2, (12, 12)),
    ("MoE, 2 devices", SUITE / "qwen3moe-moe.gguf", 4096, "f16", 2, (16, 10)),
    ("MoE, 2 devices", SUITE / "llama4-moe.gguf", 4096, "f16", 2, (16, 16)),
    ("MoE, 2 devices", SUITE / "llama4-moe.gguf", 4096, "f16", 2, (20, 16)),
    ("dense, 2 devices", SUITE / "llama-dense.gguf", 8192, "f16", 2, (12, 12)),
]


SHAPED = Path.home() / ".cache/ggufprof/shaped"
SHAPED_CASES = [
    ("MoE 30B shape, 1 device", SHAPED / "qwen3moe-30b-a3b.gguf", 8192, "f16", 1, (8192,)),
    ("MoE 30B shape, 2 devices", SHAPED / "qwen3moe-30b-a3b.gguf", 8192, "f16", 2, (6144, 4096)),
    ("MoE 30B shape, 3 devices", SHAPED / "qwen3moe-30b-a3b.gguf", 8192, "f16", 3, (4096, 3072, 4096)),
    ("MoE 30B shape, 3 devices", SHAPED / "qwen3moe-30b-a3b.gguf", 8192, "f16", 3, (6144, 2048, 3072)),
    # benchmarks/h200-fit's MoE cases (-c 32768, 8 and 14 GiB), on one rpc-server
    *(("MoE 30B shape, 1 device", SHAPED / "qwen3moe-30b-a3b.gguf", 32768, t, 1, (b,))
      for b in (8192, 14336) for t in ("f16", "q8_0")),
]
TABLE = ["| case | model | -c | K/V | budget MiB | llama-fit-params | on devices MiB | within? | s | ggufprof fit | "
         "on devices MiB | within? | next step over? | s | loads | ≥? |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]


def shaped(path: Path) -> None:
    """The header-only model written by scripts/make_shaped.py, once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "scripts/make_shaped.py"), path.stem, str(path)], check=True,
                       capture_output=True)


def env(bin_dir: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), LLAMA_CPP_LIB_PATH=str(bin_dir))


def timed(cmd: list[str], e: dict) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=e)
    return out, time.perf_counter() - t


def ggufprof(e: dict, *args: str) -> tuple[object, float]:
    out, secs = timed([sys.executable, "-m", "ggufprof", *args, "--json"], e)
    if out.returncode not in (0, 1):
        raise SystemExit(f"ggufprof {' '.join(args)} failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout), secs


def start_servers(bin_dir: Path, n: int) -> tuple[list[subprocess.Popen], list[str]]:
    procs, eps = [], []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs.append(subprocess.Popen([str(bin_dir / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(port), "-t", "1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        eps.append(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("rpc-server did not start")
            time.sleep(0.05)
    return procs, eps


def free_mib(bin_dir: Path, e: dict, model: Path, rpc: list[str]) -> list[int]:
    """Each rpc-server's free memory as llama.cpp's fit reads it (its memory breakdown)."""
    out, _ = timed([str(bin_dir / "llama-fit-params"), "-m", str(model), "--rpc", ",".join(rpc), "-c", "256",
                    "-fitt", "0", "-v"], e)
    rows = {ep: int(free) for _, ep, free in FREE_DEV.findall(out.stderr)}
    return [rows[ep] for ep in rpc]


def footprint(e: dict, model: Path, ctx: int, t: str, placement: list[str]) -> dict[str, dict]:
    """``estimate --total`` of a placement: each device's row (weights, KV, compute, total, ...)."""
    d, _ = ggufprof(e, "estimate", str(model), "-c", str(ctx), "-ctk", t, "-ctv", t, "--total", *placement)
    return d["total"]


def held(rows: dict[str, dict]) -> int:
    """The weight, KV and recurrent-state bytes a footprint puts on the rpc-servers: what a search
    maximises (what stays on the host is read from host memory at every token); compute buffers are
    the tie-break."""
    return sum(r["weights_bytes"] + r["kv_bytes"] + r["recurrent_bytes"] for dev, r in rows.items()
               if dev.startswith("RPC"))


def llama_placement(answer: str) -> list[str]:
    """llama-fit-params' answer line without -c (and its -ngl -1 as all), as estimate takes it."""
    parts = shlex.split(answer)  # it quotes -ot values
    out, i = [], 0
    while i < len(parts):
        if parts[i] == "-c":
            i += 2
            continue
        if parts[i] == "-ngl" and parts[i + 1] == "-1":
            out += ["-ngl", "all"]
            i += 2
            continue
        out.append(parts[i])
        i += 1
    return out


def short(placement: list[str]) -> str:
    return " ".join(p if len(p) < 40 else p[:37] + "..." for p in placement)


def row(bin_dir: Path, e: dict, eps: list[str], label: str, model: Path, ctx: int, t: str, n: int,
        budget: tuple[int, ...]) -> str:
    """One case: both tools' answers, their totals on the devices by the exact prediction, their times."""
    rpc = eps[:n]
    free = free_mib(bin_dir, e, model, rpc)
    fitt = [f - b for f, b in zip(free, budget)]
    lf, lsecs = timed([str(bin_dir / "llama-fit-params"), "-m", str(model), "--rpc", ",".join(rpc),
                       "-c", str(ctx), "-ctk", t, "-ctv", t, "-fitt", ",".join(map(str, fitt)), "-v"], e)
    read = {ep: int(f) for _, ep, f in FREE_DEV.findall(lf.stderr)}  # what this run of it read
    seen = [read.get(ep, f) for ep, f in zip(rpc, free)]
    limit = [(s - f) * MiB for s, f in zip(seen, fitt)]  # the bytes llama.cpp's fit had
    m = ANSWER.search(lf.stdout)
    base = ["--rpc", ",".join(rpc)]
    if m:
        lp = base + llama_placement(m.group(1))
        l_rows = footprint(e, model, ctx, t, lp)
        lt = {dev: row["total_bytes"] for dev, row in l_rows.items()}
        devs = [d for d in lt if d.startswith("RPC")]
        l_ok = all(lt[d] <= lim for d, lim in zip(devs, limit))
        l_answer = short(llama_placement(m.group(1)))
        l_dev = f"{sum(lt[d] for d in devs) / MiB:.2f}"
    else:
        l_dev = "-"
        l_ok, l_answer = None, "(no answer: " + (lf.stderr.strip().splitlines() or ["?"])[-1][-60:] + ")"
    vram = ",".join(f"{lim}B" for lim in limit)
    rows, gsecs = ggufprof(e, "fit", str(model), "--vram", vram, "--margin", "0MiB", "-c", str(ctx), "-ct", t, *base)
    (r,) = rows
    if r["ctx_size"]:
        cmd = shlex.split(r["command"]["llama-server"])  # it quotes -ot values
        gp = cmd[cmd.index("-ngl"):cmd.index("--fit")]  # every placement flag of the answer, --rpc included
        g_rows = footprint(e, model, ctx, t, gp)
        gt = {dev: row["total_bytes"] for dev, row in g_rows.items()}
        devs = [d for d in gt if d.startswith("RPC")]
        g_ok = all(gt[d] <= lim for d, lim in zip(devs, limit))
        nxt = r["next_step_total_bytes"]
        over = any(nxt.get(d, 0) > lim for d, lim in zip(devs, limit)) if nxt else None
        g_answer = " ".join(x for x in gp if x != "--rpc" and not x.startswith("127.0.0.1"))
        g_dev = f"{sum(gt[d] for d in devs) / MiB:.2f}"
    else:
        g_dev = "-"
        g_ok, over, g_answer = None, None, "nothing fits: " + r["note"][:50]
    return (f"| {label} | {model.stem} | {ctx} | {t} | {'/'.join(map(str, budget))} | {l_answer} | {l_dev} | "
            f"{'-' if l_ok is None else 'yes' if l_ok else '**NO**'} | {lsecs:.2f} | {g_answer} | {g_dev} | "
            f"{'-' if g_ok is None else 'yes' if g_ok else '**NO**'} | "
            f"{'-' if over is None else 'yes' if over else 'no'} | {gsecs:.2f} | {r['dry_run_loads']} | "
            f"{_compare(l_rows if m else None, g_rows if r['ctx_size'] else None, l_dev, g_dev)} |")


def _compare(theirs: dict[str, dict] | None, ours: dict[str, dict] | None, l_dev: str, g_dev: str) -> str:
    """ggufprof's answer against llama.cpp's, by their footprints: more weights and cache on the
    devices ("yes"), the same with at least as many bytes in all ("yes"), the same bytes held but
    smaller compute buffers there ("tie": the same model and cache on the devices), or less ("**NO**")."""
    if theirs is None or ours is None:
        return "-"
    if held(ours) != held(theirs):
        return "yes" if held(ours) > held(theirs) else "**NO**"
    return "yes" if float(g_dev) >= float(l_dev) else "tie"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--shaped", action="store_true", help="also Qwen3-30B-A3B's shape (make_shaped.py), a table of its own")
    args = ap.parse_args()
    e = env(args.bin)
    procs, eps = start_servers(args.bin, max(case[4] for case in CASES + (SHAPED_CASES if args.shaped else [])))
    lines = list(TABLE)
    try:
        for case in CASES:
            if not case[1].exists():
                print(f"skipped {case[1]}: missing", file=sys.stderr)
                continue
            lines.append(row(args.bin, e, eps, *case))
            print(lines[-1], flush=True)
        if args.shaped:
            lines += ["", "Qwen3-30B-A3B's shape (scripts/make_shaped.py: its header, zero weights; a dry-run load ~0.3 s):",
                      "", *TABLE]
            for case in SHAPED_CASES:
                shaped(case[1])
                lines.append(row(args.bin, e, eps, *case))
                print(lines[-1], flush=True)
        # estimate --total against llama-fit-params --fit-print for one configuration
        model, rpc = ROOT / "fixtures/gemma3-swa.gguf", eps[:1]
        est, fp = [], []
        for _ in range(5):
            _, s = ggufprof(e, "estimate", str(model), "-c", "8192", "--total", "-ngl", "5", "--rpc", rpc[0])
            est.append(s)
            _, s = timed([str(args.bin / "llama-fit-params"), "-m", str(model), "--rpc", rpc[0], "-c", "8192",
                          "-ngl", "5", "--fit-print", "on"], e)
            fp.append(s)
        lines.append("")
        lines.append(f"estimate --total (one configuration, gemma3-swa -ngl 5 on one rpc-server): median "
                     f"{statistics.median(est):.2f} s; llama-fit-params --fit-print: median {statistics.median(fp):.2f} s "
                     f"(5 runs each, fresh processes)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
    text = HEADER + "\n" + "\n".join(lines)
    print("\n" + text)
    if args.md:
        args.md.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
