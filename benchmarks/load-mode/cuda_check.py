"""On a CUDA build of the pinned llama.cpp (../shared/gpu/build-cuda.sh): place() against the real
load's model buffers, the dry run's compute buffers against the real context's, and the per-device
rows of ``llama-fit-params --fit-print on``, per load mode (-lm none / auto / mmap, --no-host,
--no-repack) at -ngl 2 and 0, and with -dev none (the CPU's extra buffer types: AMX on a CPU that has
it). Models given on the command line get the two cases where AMX applies. Usage, on the device, from the project root with LLAMA_CPP_LIB_PATH
set: ``python benchmarks/load-mode/cuda_check.py [MORE.gguf ...]``; writes $OUT/lm17_cuda.json."""
import json, os, subprocess, sys
from pathlib import Path
from ggufprof.measure.workers import Worker
from ggufprof.measure.dry_run import DryRun
from ggufprof.memory.caches import mib_f64
from ggufprof.memory.footprint import footprint
from ggufprof.memory.placement import PlacementFlags, place
from ggufprof.memory.predict import predict
from ggufprof.memory.settings import KVSettings
from ggufprof.model.model_info import load_model_info
from ggufprof.flags import placement_args
from ggufprof.results.llama_log import parse_log
MIB = 1 << 20
s = KVSettings(ctx_size=1024, swa_full=False)
GRID = [(ngl, extra) for ngl in (2, 0) for extra in (
    {"load_mode": "none"}, {"load_mode": "none", "no_host": True}, {}, {"load_mode": "mmap"},
    {"load_mode": "none", "repack": False})] + [(0, {"devices": ("none",)})]  # -dev none: the CPU's extra buffers (AMX here)
QUICK = [(2, {"load_mode": "none", "no_host": True}), (0, {"devices": ("none",)})]  # the larger models: where AMX applies
cases = [(Path(f"fixtures/{f}.gguf"), ngl, extra) for f in ("llama-q4_0", "llama-gqa") for ngl, extra in GRID]
cases += [(Path(a), ngl, extra) for a in sys.argv[1:] for ngl, extra in QUICK]
out = []
for m, ngl, extra in cases:
    fl = PlacementFlags(n_gpu_layers=ngl, **extra)
    info = load_model_info(m); pred = predict(info, s)
    with Worker("probe_worker") as w:
        r = w.ask({"op": "load", "model": str(m), "placement": fl.to_dict()}, timeout=300)
        ctx = w.ask({"op": "context", "settings": __import__("dataclasses").asdict(s)}, timeout=300).result
    if not r.ok or "load_error" in r.result:
        out.append({"model": m.name, "flags": extra, "ngl": ngl, "error": str(r.failure or r.result)}); continue
    real = parse_log(r.result["log"]).model_buffers_mib
    try:
        with DryRun(m, placement=fl) as dry:
            devs = dry.offload_devices(); dr = dry.ask(s); cb = dry.cpu_buffer_types(); p = place(info, pred, cpu_bufts=cb, flags=fl, devices=devs)
    except Exception as e:  # record it and go on: one refusal must not lose the other rows
        out.append({"model": m.name, "flags": extra, "ngl": ngl, "real": real, "error": f"{type(e).__name__}: {e}"})
        print(json.dumps(out[-1]), flush=True); continue
    mine = {b: mib_f64(n) for b, n in {**p.weights_buffer, **p.host_model_buffers}.items()}
    fp = footprint(info, pred, p, dr.compute_bytes)
    names = {d.buft: d.name for d in devs} | {"CPU": "Host"}
    ours = {names.get(d.device, d.device): [d.weights_bytes // MIB, (d.kv_bytes + d.recurrent_bytes) // MIB, d.compute_bytes // MIB] for d in fp}
    fpo = subprocess.run(["/tmp/w/build/bin/llama-fit-params", "-m", str(m), "--fit-print", "on", "-ngl", str(ngl),
                          *placement_args(fl), *(["--no-repack"] if not fl.repack else []), "-c", "1024"],
                         capture_output=True, text=True, timeout=120)
    rows = {ln.split()[0]: [int(x) for x in ln.split()[1:]] for ln in fpo.stdout.splitlines()
            if ln.split() and (ln.startswith("Host ") or ln.startswith("CUDA"))}
    ctx_real = parse_log(ctx["log"]).compute_buffers_mib if ctx.get("ok") else None
    out.append({"model": m.name, "ngl": ngl, "flags": extra, "real": real, "predicted": mine, "exact": real == mine,
                "mmap": p.mmap, "fit_params": rows, "ours": ours, "fit_rows_agree": rows == ours,
                "compute_real": ctx_real, "compute_dry": dr.log.compute_buffers_mib,
                "compute_agree": ctx_real == dr.log.compute_buffers_mib,
                "bufts": sorted(set(cb.values()))})
    print(json.dumps(out[-1]), flush=True)
Path(os.environ["OUT"], "lm17_cuda.json").write_text(json.dumps(out, indent=1))
print("ALL EXACT" if all(o.get("exact") for o in out) else "MISMATCH", sum(1 for o in out if o.get("exact")), len(out))
