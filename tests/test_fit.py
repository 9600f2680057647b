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
from ggufprof.memory.placement import place
from ggufprof.memory.predict import predict
from ggufprof.memory.settings import KVSettings
from ggufprof.model.model_info import load_model_info
from ggufprof.results.checks import kv_mismatches
from ggufprof.results.llama_log import mib_bytes

from .archs_suite import llama_tools_bin
from .conftest import FIXTURE_NAMES, fixture_path

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
    assert cpu["total_bytes"] == sum(cpu[k] for k in ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes",
                                                     "output_bytes"))


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
    assert r.exit_code == 0 and all(x["ctx_size"] == 0 for x in json.loads(r.stdout))


@pytest.mark.parametrize("budget", ["0", "-1", "abc", "1e30", "99999999999 GiB"])
def test_bad_budgets(budget):
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--memory", budget])
    assert r.exit_code == 2 and r.stderr.startswith("Error: --memory") and len(r.stderr.strip().splitlines()) == 1


def test_vram_budget_needs_a_gpu_llama_cpp_lists():
    """--vram is refused exactly when llama.cpp's own device list has no GPU (a CPU build, or no
    device); on a GPU build the same command answers."""
    r = runner.invoke(app, ["fit", str(fixture_path("llama-gqa")), "--vram", "24GiB", "--json"])
    if visible_gpu() is None:
        assert r.exit_code == 2 and "no GPU is visible" in r.stderr
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
