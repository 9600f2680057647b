"""The whole footprint (estimate --total), llama.cpp's dry run and ``fit``, on real llama.cpp."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.measure.dry_run import DryRun, cross_check, visible_gpu
from ggufprof.measure.fit import Budget, fit_all
from ggufprof.memory.footprint import footprint
from ggufprof.memory.graph import graph_meta_bytes
from ggufprof.memory.placement import place
from ggufprof.memory.predict import predict
from ggufprof.memory.settings import KVSettings
from ggufprof.model.model_info import load_model_info
from ggufprof.results.checks import kv_mismatches
from ggufprof.results.llama_log import mib_bytes

from .archs_suite import llama_tools_bin
from .conftest import FIXTURE_NAMES, FIXTURES, fixture_path
from .edited_results import calm, scale_spread, set_samples, write_copy

runner = CliRunner(mix_stderr=False)
MIB = 1 << 20


def test_dry_run_compute_buffer_equals_a_real_context(llama_models):
    """The dry run (no_alloc) logs the compute and output buffers a real context allocates, and its KV
    sizes equal the prediction, for a grid of settings."""
    n = 0
    for name in ("llama-gqa", "gemma3-swa"):
        info = load_model_info(fixture_path(name))
        with DryRun(info.path) as dry:
            for ctx, ub, np_, fa, t in itertools.product([512, 3000, 8192], [128, 512], [1, 3], ["on", "off"],
                                                          ["f16", "q8_0"]):
                s = KVSettings(ctx_size=ctx, ubatch_size=ub, parallel=np_, flash_attn=fa, cache_type_k=t,
                               cache_type_v=t if fa == "on" else "f16", swa_full=False)
                d = dry.ask(s)
                cross_check(predict(info, s), d)
                real = llama_models[name].create_context(s)
                try:
                    assert d.log.compute_buffers_mib == real.log.compute_buffers_mib, s
                    assert d.log.compute_buffers_mib["CPU"] != "0.00"
                finally:
                    llama_models[name].free_context(real)
                n += 1
    assert n == 96


def test_estimate_total_per_device_json():
    r = runner.invoke(app, ["estimate", str(fixture_path("llama-gqa")), "-c", "4096", "-np", "2", "--total", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    cpu = d["total"]["CPU"]
    assert set(cpu) >= {"weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes", "output_bytes", "total_bytes"}
    assert cpu["kv_bytes"] == d["kv_bytes"]  # every buffer 32-byte aligned already
    assert cpu["weights_bytes"] == load_model_info(fixture_path("llama-gqa")).weight_bytes
    assert cpu["output_bytes"] == 384 * 2 * 4  # n_vocab x n_seq_max floats
    # llama-gqa's graphs: 1024 nodes (8 per tensor, at least 1024), three graph results on the heap
    assert cpu["graph_bytes"] == 3 * (368 * 1024 + 41424)
    assert cpu["total_bytes"] == sum(cpu[k] for k in ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes",
                                                     "output_bytes", "graph_bytes"))


def test_fit_answer_fits_and_the_next_step_does_not(llama_models):
    """A budget tight enough to bind below the training context: the answer's total is within
    budget - margin, the next 256-cell step's is not, and the answer is created for real."""
    info = load_model_info(fixture_path("gemma3-swa"))
    budget = Budget(host=(1 << 30) + 20 * MIB, margin=1 << 30)
    base = KVSettings(swa_full=True, parallel=1)
    results = fit_all(info, [("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0")], base, budget)
    sizes = [r.ctx_size for r in results]
    assert 0 < sizes[0] < sizes[1] < sizes[2] <= 8192 and all(s % 256 == 0 for s in sizes)
    for r in results:
        limit = budget.host - budget.margin
        assert r.device("CPU").total_bytes <= limit
        if not r.capped:
            assert r.next_total["CPU"] > limit
        s = KVSettings(ctx_size=r.ctx_size, cache_type_k=r.cache_type_k, cache_type_v=r.cache_type_v, swa_full=True)
        real = llama_models["gemma3-swa"].create_context(s)
        try:  # llama.cpp creates the answer, with exactly the caches its total was made of
            assert real.n_ctx == r.ctx_size
            assert not kv_mismatches(r.prediction, real.log, real.n_ctx, real.n_ctx_seq), r
            assert mib_bytes(real.log.compute_buffers_mib["CPU"]) == r.device("CPU").compute_bytes
        finally:
            llama_models["gemma3-swa"].free_context(real)


def test_fit_cli_json_verify_and_nothing_fits():
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", "1.02GiB", "-ct", "f16,q4_0",
                            "--verify", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["cache_type_k"], x["cache_type_v"]) for x in rows] == [("f16", "f16"), ("q4_0", "q4_0")]
    assert all(x["ctx_size"] > 0 and x["verify"]["fits"] and x["verify"]["status"] == "ok" for x in rows)
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", "1GiB", "--json"])
    rows = json.loads(r.stdout)
    assert r.exit_code == 1 and all(x["ctx_size"] == 0 for x in rows)  # nothing fits is not a pass
    # the budget the smallest context needs: its total plus the margin, and that budget does fit it
    need = min(x["smallest_budget_bytes"]["CPU"] for x in rows)
    assert need > 1 << 30
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", str(need), "--json"])
    assert r.exit_code == 2 and "give a unit" in r.stderr  # a bare number is refused, not read as bytes
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", f"{need}B", "--json"])
    assert r.exit_code == 0 and max(x["ctx_size"] for x in json.loads(r.stdout)) >= 256
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", "1GiB"])
    assert r.exit_code == 1 and "nothing fits; the smallest context" in r.stdout


@pytest.mark.parametrize("budget", ["0", "8", "-1", "abc", "1e30", "99999999999 GiB", "0GiB"])
def test_bad_budgets(budget):
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", budget])
    assert r.exit_code == 2 and r.stderr.startswith("Error: --memory") and len(r.stderr.strip().splitlines()) == 1


def test_vram_budget_needs_a_gpu_llama_cpp_lists():
    """--vram is refused exactly when llama.cpp's own device list has no GPU (a CPU build, or no
    device); on a GPU build the same command answers."""
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--vram", "24GiB", "--json"])
    if visible_gpu() is None:
        assert r.exit_code == 2 and "no offload device" in r.stderr and "--rpc" in r.stderr
    else:
        assert r.exit_code == 0 and all(x["ctx_size"] > 0 for x in json.loads(r.stdout)), r.output


# llama.cpp's common defaults (common/common.h), which llama-fit-params starts from: swa_full off
FIT_PARAMS_SETTINGS = [
    ([], KVSettings(ctx_size=0, swa_full=False)),  # -c unset: the training context
    (["-c", "1000"], KVSettings(ctx_size=1000, swa_full=False)),
    (["-c", "65536", "-ctk", "q8_0", "-ctv", "q8_0"], KVSettings(ctx_size=65536, cache_type_k="q8_0", cache_type_v="q8_0", swa_full=False)),
    (["-c", "40000", "-ctk", "q8_0", "-ctv", "q4_0", "-ub", "128"],
     KVSettings(ctx_size=40000, cache_type_k="q8_0", cache_type_v="q4_0", ubatch_size=128, swa_full=False)),
    (["-c", "20000", "-ctk", "q4_0", "-ctv", "q4_0", "-np", "3"],
     KVSettings(ctx_size=20000, cache_type_k="q4_0", cache_type_v="q4_0", parallel=3, swa_full=False)),
    (["-c", "20000", "-np", "3", "--swa-full"], KVSettings(ctx_size=20000, parallel=3)),  # (-kvu: not a flag of this tool)
    (["-c", "30000", "-fa", "off", "-b", "300"], KVSettings(ctx_size=30000, flash_attn="off", batch_size=300, swa_full=False)),
]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_total_per_device_equals_llama_fit_params(name):
    """llama.cpp's own breakdown, ``llama-fit-params --fit-print on`` (model / context / compute MiB per
    device from its no_alloc dry run, floored): ggufprof's footprint gives the same three numbers."""
    tool = llama_tools_bin() / "llama-fit-params"
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run scripts/build_llama_tools.sh llama-fit-params (make archs) first")
    path = fixture_path(name)
    info = load_model_info(path)
    with DryRun(path) as dry:
        for args, s in FIT_PARAMS_SETTINGS:
            out = subprocess.run([str(tool), "-m", str(path), "--fit-print", "on", *args], capture_output=True,
                                 text=True, timeout=60)
            (host,) = [ln.split() for ln in out.stdout.splitlines() if ln.startswith("Host ")]
            pred = predict(info, s)
            dry_result = dry.ask(s)
            cross_check(pred, dry_result)
            (cpu,) = footprint(info, pred, place(info, pred, 0), dry_result.compute_bytes)
            ours = [cpu.weights_bytes // MIB, (cpu.kv_bytes + cpu.recurrent_bytes) // MIB, cpu.compute_bytes // MIB]
            assert ours == [int(x) for x in host[1:]], (name, args)
            assert cpu.kv_bytes > MIB or s.ctx_size in (0, 1000)  # the large contexts are not all rounding


def test_backend_devices_report_what_llama_cpp_budgets_against():
    """ggml's own device list (what llama.cpp's --fit reads): here, the CPU with the machine's memory."""
    import psutil

    from ggufprof.measure.llama_ctx import backend_devices

    devs = backend_devices()
    cpu = [d for d in devs if d.type == "cpu"]
    assert len(cpu) == 1 and cpu[0].name == "CPU"
    assert abs(cpu[0].total - psutil.virtual_memory().total) <= 0.02 * psutil.virtual_memory().total
    assert 0 < cpu[0].free <= cpu[0].total


def test_fit_table_is_not_squeezed_in_a_log():
    """Printed to a pipe or a CI log (not a terminal), the table keeps its full cells."""
    r = runner.invoke(app, ["fit", str(fixture_path("gemma3-swa")), "--memory", "1.02GiB", "-ct", "q8_0:q4_0"])
    assert r.exit_code == 0, r.output
    assert "q8_0/q4_0" in r.stdout and "…" not in r.stdout


def test_gpu_visibility_is_llama_cpps_own_device_list():
    """The CLI asks llama.cpp (in a worker) which devices it has -- its own list, whatever NVML
    might say: the CPU always, and the first GPU device (if any) is the one offloaded to."""
    from ggufprof.measure.dry_run import backend_devices_in_worker

    devs = backend_devices_in_worker()
    assert [d["name"] for d in devs if d["type"] == "cpu"] == ["CPU"] and all(d["total"] > 0 for d in devs)
    gpus = [d["name"] for d in devs if d["type"] in ("gpu", "igpu")]
    assert visible_gpu() == (gpus[0] if gpus else None)


def test_fit_json_names_profile_limit_and_the_command_to_run():
    """Each answer says which defaults applied, what stops the next step (device and its largest part)
    and the llama-server command that creates exactly that context; the command's settings are the
    answer's (parsed back through the same flag parsers)."""
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", "1.02GiB", "-ct", "f16,q8_0", "--json"])
    assert r.exit_code == 0, r.output
    for row in json.loads(r.stdout):
        assert row["defaults"] == "tools"
        cmd = row["command"]["llama-server"].split()
        assert cmd[:3] == ["llama-server", "-m", str(fixture_path("llama-gqa"))]
        assert int(cmd[cmd.index("-c") + 1]) == row["ctx_size"] and cmd[-2:] == ["--fit", "off"]
        if row["cache_type_k"] != "f16":
            assert cmd[cmd.index("-ctk") + 1] == row["cache_type_k"]
        lim = row["limited_by"]
        if row["capped_by_n_ctx_train"]:
            assert lim == {"by": "n_ctx_train"}
        else:
            assert lim["device"] == "CPU" and lim["total_bytes"] == row["next_step_total_bytes"]["CPU"]
            assert lim["by"] in ("weights", "KV cache", "compute buffer")


Q4_0 = FIXTURES / "llama-q4_0.gguf"


def test_repacked_weights_are_counted_as_llama_cpp_allocates_them():
    """A Q4_0 model on this CPU: llama.cpp copies its matrices (not token_embd, read by GET_ROWS) into a
    CPU_REPACK buffer at load, on top of the mapped file. --total counts it exactly as the real load
    logs it (its dry run does not), and --no-repack leaves it out; on a CPU without a repacking
    kernel (no AVX2, dotprod, ...) llama.cpp makes no such buffer and neither does the prediction."""
    from ggufprof.measure.llama_ctx import LlamaModel
    from ggufprof.memory.caches import mib_f64

    real = LlamaModel(Q4_0)
    try:
        logged = real.load_log.model_buffers_mib.get("CPU_REPACK")
    finally:
        real.close()
    on = json.loads(runner.invoke(app, ["estimate", str(Q4_0), "-c", "4096", "--total", "--json"]).stdout)["total"]["CPU"]
    off = json.loads(runner.invoke(app, ["estimate", str(Q4_0), "-c", "4096", "--total", "--no-repack", "--json"]).stdout)
    off = off["total"]["CPU"]
    assert off["repack_bytes"] == 0 and on["total_bytes"] - off["total_bytes"] == on["repack_bytes"]
    if logged is None:
        assert on["repack_bytes"] == 0
    else:
        assert mib_f64(on["repack_bytes"]) == logged and on["repack_bytes"] > 0
        info = load_model_info(Q4_0)
        embd = next(t for t in info.tensors if t.name == "token_embd.weight")
        assert on["repack_bytes"] <= info.weight_bytes - embd.n_bytes  # the embeddings are never repacked
    with_no_repack = LlamaModel(Q4_0, repack=False)
    try:
        assert "CPU_REPACK" not in with_no_repack.load_log.model_buffers_mib
    finally:
        with_no_repack.close()


def test_margin_zero_and_headroom_beyond_the_margin():
    """--margin 0 is a budget llama.cpp's --fit-target takes too; headroom is what is left beyond the
    margin (budget - margin - total), so a tight answer reads near 0, not the margin."""
    rows = {}
    for margin in ("0MiB", "512MiB"):
        r = runner.invoke(app, ["fit", str(fixture_path("gemma3-swa")), "--memory", "600MiB", "--margin", margin,
                                "-ct", "f16", "--json"])
        assert r.exit_code == 0, r.output
        (rows[margin],) = json.loads(r.stdout)
    for margin, row in rows.items():
        limit = 600 * MIB - int(margin.removesuffix("MiB")) * MIB
        assert row["headroom_bytes"] == limit - row["total_bytes"] >= 0
    assert rows["0MiB"]["ctx_size"] >= rows["512MiB"]["ctx_size"]
def test_llama_log_echo_never_reaches_the_json(tmp_path):
    """GGUFPROF_LLAMA_LOG=1 makes workers echo llama.cpp's log; the dry run's protocol has its own
    pipes (measure/workers.py), so ``estimate --total --json`` and ``fit --json`` print the same valid
    JSON with it as without it (run as real processes: whatever reaches file descriptor 1 counts)."""
    import os
    import sys

    from .conftest import ROOT

    def run(args: list[str], echo: bool) -> object:
        env = {k: v for k, v in os.environ.items() if k != "GGUFPROF_LLAMA_LOG"}
        env.update({"PYTHONPATH": str(ROOT), **({"GGUFPROF_LLAMA_LOG": "1"} if echo else {})})
        out = subprocess.run([sys.executable, "-m", "ggufprof", *args], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # valid JSON: nothing but the answer on stdout

    model = str(fixture_path("gemma3-swa"))
    for args in (["estimate", model, "-c", "4096", "--total", "--json"],
                 ["fit", model, "--memory", "1.02GiB", "-ct", "f16,q4_0", "--json"]):
        assert run(args, echo=True) == run(args, echo=False), args


# --- the search's bounds: a stated training context of 2^31 or 2^32-1 tokens, or none (0) ----------

def test_search_ceiling_and_memory_bound_on_header_only_models(tmp_path):
    """Pure (no llama.cpp): what ends a search before memory does, and the bound the prediction alone
    puts on it (weights + KV + state + output, everything but the compute buffers)."""
    from ggufprof.measure.fit import CAP_SEARCH, CAP_TRAIN, CAP_UINT32, STEP, ceiling, memory_bound
    from ggufprof.memory.settings import UINT32_MAX

    from .gguf_files import llama_like

    def model(n_ctx_train: int):
        return load_model_info(llama_like(tmp_path / f"m{n_ctx_train}.gguf", context_length=n_ctx_train))

    assert ceiling(model(1 << 31), 1) == ((1 << 31) // STEP, CAP_TRAIN)
    assert ceiling(model(0), 1) == ((1 << 20) // STEP, CAP_SEARCH)
    k, cap = ceiling(model(UINT32_MAX), 1)
    assert cap == CAP_UINT32 and predict(model(UINT32_MAX), KVSettings(ctx_size=k * STEP)).n_ctx <= UINT32_MAX
    assert ceiling(model(UINT32_MAX), 3)[0] * STEP * 3 <= UINT32_MAX - 256  # per stream, times the streams

    m = model(1 << 31)  # 4 layers x (K + V) x 64 x f16: 1 KiB per token, no weights
    budget = Budget(host=(1 << 30) + 64 * MIB, margin=1 << 30)
    steps = lambda k: KVSettings(ctx_size=k * STEP)  # noqa: E731
    bound = memory_bound(m, budget, (1 << 31) // STEP, steps)
    kv = lambda k: predict(m, steps(k)).kv_bytes  # noqa: E731
    assert m.weight_bytes == m.n_vocab == 0  # a header: no weights, no vocabulary, so no output buffer either
    graph = 3 * graph_meta_bytes(m, 1 << 20, 512)  # the graph metadata, the footprint's only other part here
    assert kv(bound) + graph <= 64 * MIB < kv(bound + 1) + graph and bound * STEP == 65536 - 5 * STEP  # not 2^31
    assert memory_bound(m, Budget(host=1 << 30, margin=1 << 30), 1 << 23, steps) == 0  # nothing left


def test_cap_footnotes_say_what_capped_the_answer(tmp_path):
    """A context stopped by the search ceiling (the model states no training context) is footnoted
    as that, not as "the training context"."""
    from io import StringIO

    from rich.console import Console

    from ggufprof.api import FitReport
    from ggufprof.measure.fit import CAP_SEARCH, CAP_TRAIN, FitResult
    from ggufprof.present.console import print_fit

    from .gguf_files import llama_like

    info = load_model_info(llama_like(tmp_path / "m.gguf", context_length=0))
    out = StringIO()
    results = [FitResult("f16", "f16", 1 << 20, capped_by=CAP_SEARCH), FitResult("q8_0", "q8_0", 4096, capped_by=CAP_TRAIN)]
    print_fit(FitReport(info, Budget(host=8 << 30), KVSettings(), 0, None, results), Console(file=out, width=200))
    text = out.getvalue()
    assert "no training context stated" in text and "1,048,576*" in text and "4,096**" in text
    assert "* the search ceiling, 1,048,576 tokens per sequence (the model states no training context)" in text
    assert "** the training context (n_ctx_train)" in text


@pytest.mark.parametrize("n_ctx_train", [1 << 31, (1 << 32) - 1, 0])
def test_fit_of_a_model_stating_a_huge_or_no_training_context(tmp_path, n_ctx_train):
    """llama-gqa stating another training context (its header changed, llama.cpp really loads it):
    the dry run is never asked about a context the budget cannot hold (before: 2^31 tokens first, a
    std::bad_alloc that failed the whole search; at 2^32-1 an error about --ctx-size, which nobody
    passed), and every answer is what memory allows (here 9-15k tokens)."""
    from ggufprof.measure.fit import STEP, Fitter, memory_bound

    from .gguf_files import with_u32

    path = with_u32(fixture_path("llama-gqa"), tmp_path / "m.gguf", "llama.context_length", n_ctx_train)
    info = load_model_info(path)
    budget = Budget(host=(1 << 30) + 20 * MIB, margin=1 << 30)
    fitter = Fitter(info, KVSettings(), budget)
    asked: list[int] = []
    ask = fitter.dry.ask
    fitter.dry.ask = lambda s, *a: asked.append(s.ctx_size) or ask(s, *a)  # observe, the real dry run answers
    try:
        results = [fitter.fit(t, t) for t in ("f16", "q8_0", "q4_0")]
    finally:
        fitter.close()
    for r in results:
        assert r.note == "" and 4096 < r.ctx_size < 65536 and not r.capped and r.next_total, r
        assert r.device("CPU").total_bytes <= budget.host - budget.margin < r.next_total["CPU"]
    bound = max(memory_bound(info, budget, 1 << 24, lambda k: KVSettings(ctx_size=k * STEP, cache_type_k=t,
                                                                          cache_type_v=t)) for t in ("f16", "q4_0"))
    assert max(asked) <= (bound + 1) * STEP < 1 << 17
    r = runner.invoke(app, ["fit", str(path), "--memory", "1.02GiB", "-ct", "q8_0"])
    assert r.exit_code == 0 and "--ctx-size" not in r.output and "11,264" in r.stdout, r.output


def test_fit_without_a_training_context_stops_at_the_search_ceiling(tmp_path):
    from .gguf_files import with_u32

    path = with_u32(fixture_path("llama-gqa"), tmp_path / "m.gguf", "llama.context_length", 0)
    r = runner.invoke(app, ["fit", str(path), "--memory", "4GiB", "-ct", "q4_0", "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert (row["ctx_size"], row["capped_by"], row["capped_by_n_ctx_train"]) == (1 << 20, "search ceiling", False)
    r = runner.invoke(app, ["fit", str(path), "--memory", "4GiB", "-ct", "q4_0"])
    text = " ".join(r.stdout.split())
    assert "* the search ceiling, 1,048,576 tokens per sequence" in text and "training context (n_ctx_train)" not in text


# --- --results: speed from a sweep of this model file, at the fit's settings -------------------------

def _fit(model: str, results_dir, *args: str):
    return runner.invoke(app, ["fit", str(fixture_path(model)), "--memory", "1.02GiB", "-ct", "q4_0",
                               "--results", str(results_dir), *args])


def _tg_by_config(d) -> dict:
    from ggufprof.results.store import load_records

    tg = {}
    for rec in load_records(d):
        s = rec.settings
        tg.setdefault((s["ctx_size"], s["depth"]), {})[s["cache_type_k"]] = rec.measured["tg"]["tps_mean"]
    return tg


def test_fit_results_of_this_model_give_paired_speed(sweep_dirs, tmp_path):
    """llama-gqa's sweep (f16, q8_0, q4_0 x ctx 512/2048 x depth 0/256, one sequence, fa auto), its
    samples made quiet: q4_0's tg speed against f16 is the median of the four configurations measured
    with both."""
    import statistics

    quiet = write_copy(sweep_dirs["llama-gqa"], tmp_path / "quiet", calm)
    r = _fit("llama-gqa", quiet, "--json")
    assert r.exit_code == 0, r.output
    best = max(json.loads(r.stdout), key=lambda x: x["ctx_size"])
    expect = statistics.median(by["q4_0"] / by["f16"] for by in _tg_by_config(quiet).values())
    assert best["cache_type_k"] == "q4_0" and best["tg_speed_vs_f16"]["configurations"] == 4
    assert best["tg_speed_vs_f16"]["ratio"] == pytest.approx(expect, rel=1e-12)
    assert best["tg_speed_vs_f16"]["doubtful"] == 0
    r = _fit("llama-gqa", quiet)
    text = " ".join(r.stdout.split())  # rich wraps long lines at spaces
    assert f"f16's speed in {quiet} (median of 4 configuration(s) measured with both" in text


def test_fit_speed_ratio_rests_only_on_trusted_samples(sweep_dirs, tmp_path):
    """compare's noise rule (results/noise.py) decides which paired configurations count: one noisy
    f16 record leaves three; every record noisy, or measured once, leaves "n/a" and the reasons."""
    import statistics

    def one_noisy(d):
        calm(d)
        s = d["settings"]
        if (s["cache_type_k"], s["ctx_size"], s["depth"]) == ("f16", 512, 0):
            tg = d["measured"]["tg"]
            set_samples(tg, [tg["tps_mean"] * 0.5, tg["tps_mean"] * 1.5])

    some = write_copy(sweep_dirs["llama-gqa"], tmp_path / "some", one_noisy)
    r = _fit("llama-gqa", some, "--json")
    best = max(json.loads(r.stdout), key=lambda x: x["ctx_size"])["tg_speed_vs_f16"]
    kept = [by["q4_0"] / by["f16"] for key, by in _tg_by_config(some).items() if key != (512, 0)]
    assert (best["configurations"], best["doubtful"]) == (3, 1)
    assert best["ratio"] == pytest.approx(statistics.median(kept), rel=1e-12)
    assert best["doubts"] == ["f16/f16: spread 71% > 10%"]
    text = " ".join(_fit("llama-gqa", some).stdout.split())
    assert "(median of 3 configuration(s)" in text and "1 configuration(s) left out" in text

    def once(d):
        tg = d["measured"]["tg"]
        set_samples(tg, tg["samples_tps"][:1])

    for name, change in (("noisy", scale_spread), ("once", once)):
        d = write_copy(sweep_dirs["llama-gqa"], tmp_path / name, change)
        r = _fit("llama-gqa", d, "--json")
        assert r.exit_code == 0, r.output
        best = max(json.loads(r.stdout), key=lambda x: x["ctx_size"])["tg_speed_vs_f16"]
        assert (best["ratio"], best["configurations"], best["doubtful"]) == (None, 0, 4)
        text = " ".join(_fit("llama-gqa", d).stdout.split())
        assert "generation speed against f16: n/a" in text and "x f16's speed" not in text
        assert ("fewer than 2" if name == "once" else "spread 71% > 10%") in text


def test_fit_refuses_results_of_another_model(sweep_dirs):
    r = _fit("gemma3-swa", sweep_dirs["llama-gqa"])
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert "holds results of another model" in line and "llama-gqa.gguf" in line and "gemma3-swa.gguf" in line


@pytest.mark.parametrize("args,words", [
    (["-fa", "on"], "flash_attn on"),
    (["-np", "2"], "parallel 2, kv_unified False"),
    (["--no-kv-offload"], "offload_kqv False"),
])
def test_fit_refuses_results_of_other_settings(sweep_dirs, args, words):
    """Speed measured with other sequences, flash attention or KV offload says nothing about this answer."""
    r = _fit("llama-gqa", sweep_dirs["llama-gqa"], *args)
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert "no results with the fit's" in line and words in line and "it holds parallel 1" in line
    assert "speed is compared only at the same parallel" in line
