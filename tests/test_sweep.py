"""Real sweeps of the fixtures: worker processes, llama.cpp measurements, records, resume, crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.measure.grid import GridSpec
from ggufprof.measure.sweep import Sweep, SweepSummary
from ggufprof.memory.predict import bytes_per_token
from ggufprof.model.model_info import load_model_info
from ggufprof.results.store import load_dataframe
from ggufprof.memory.placement import PlacementFlags, is_host_buffer
from ggufprof.results.schema import Record, validate
from ggufprof.results.store import read_records

from .conftest import fixture_path


def spec(**kw) -> GridSpec:
    base = dict(cache_types=[("f16", "f16"), ("q8_0", "q4_0")], ctx_sizes=[512], swa_full=[False],
                parallel=[1], kv_unified=[False], flash_attn=["auto", "off"], depths=[0], threads=2,
                n_prompt=32, n_gen=8, repetitions=2)
    base.update(kw)
    return GridSpec(**base)


@pytest.fixture(scope="module")
def gemma_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    info = load_model_info(fixture_path("gemma3-swa"))
    summary = Sweep(info, spec(swa_full=[False, True], parallel=[1, 2], kv_unified=[False, True], depths=[0, 64]),
                    out).run()
    return out, summary


def test_every_record_follows_the_schema(gemma_sweep):
    out, summary = gemma_sweep
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(summary.records) > 0
    for line in lines:
        assert validate(json.loads(line)) == []


def test_measured_kv_equals_prediction(gemma_sweep):
    _, summary = gemma_sweep
    ok = [r for r in summary.records if r.status == "ok"]
    # f16 x fa{auto,off} + q8_0/q4_0 x fa auto, each x swa_full 2 x (np1 + np2 x unified 2) x depth 2
    assert len(ok) == 3 * 2 * 3 * 2
    for r in ok:
        assert r.check["kv_exact"], (r.id, r.check["kv_mismatches"])
        logged = {c["name"]: c for c in r.measured["kv"]["caches"]}
        assert set(logged) == {"full", "swa"}
        assert r.resolved["n_ctx"] == r.predicted["n_ctx"]


def gpu_backend(r: Record) -> bool:
    """Whether llama.cpp ran with a GPU backend (a compute buffer off the host): RSS is then reported,
    not judged, since the CUDA runtime's own host allocations are in no log (results/checks.py)."""
    return any(not is_host_buffer(b) for b in r.measured["compute_buffers_mib"])


def test_rss_growth_explained_by_kv(gemma_sweep):
    _, summary = gemma_sweep
    for r in summary.records:
        if r.status == "ok":
            assert r.check["rss_explained"] is (None if gpu_backend(r) else True), (r.id, r.check)
            assert r.measured["rss"]["peak"] >= r.measured["rss"]["after_context"]


def test_speed_samples_per_repetition(gemma_sweep):
    _, summary = gemma_sweep
    for r in summary.records:
        if r.status == "ok":
            for test, n in (("pp", 32), ("tg", 8)):
                block = r.measured[test]
                # n_seq sequences decoded together: n_tokens counts them all
                assert block["tokens_per_seq"] == n and block["n_tokens"] == n * r.settings["parallel"]
                assert len(block["samples_tps"]) == 2
                assert all(t > 0 for t in block["samples_tps"])
                assert block["tps_mean"] == pytest.approx(sum(block["samples_tps"]) / 2)
            assert r.resolved["flash_attn"] in (True, False)


def test_vram_is_read_or_the_record_says_why(gemma_sweep):
    """VRAM is read through NVML where NVML sees a GPU (measure/sampling.Vram): a record has the
    readings and the GPU's description, or neither and the reason -- on a machine without a GPU
    and on one with, so no expectation here depends on which this is."""
    _, summary = gemma_sweep
    for r in (x for x in summary.records if x.status == "ok"):
        read = r.measured["vram"] is not None
        assert read == (r.env["gpu"] is not None) == (not r.env["gpu_unavailable"]), (r.id, r.env["gpu_unavailable"])
        if read:
            assert r.measured["vram"]["after_context_process"] is not None and r.env["backend_devices"]


def test_quantized_v_without_flash_attn_is_skipped(gemma_sweep):
    _, summary = gemma_sweep
    skipped = [r for r in summary.records if r.status == "skipped"]
    assert len(skipped) == 2 * 3 * 2
    for r in skipped:
        assert r.settings["cache_type_v"] == "q4_0" and r.settings["flash_attn"] == "off"
        assert "requires flash attention" in r.reason


def test_flash_attn_resolution_recorded(gemma_sweep):
    _, summary = gemma_sweep
    for r in summary.records:
        if r.status == "ok" and r.settings["flash_attn"] == "off":
            assert r.resolved["flash_attn"] is False
        if r.status == "ok" and r.settings["cache_type_v"] == "q4_0":
            assert r.resolved["flash_attn"] is True  # auto forced on by the quantized V cache


def test_csv_and_dataframe(gemma_sweep):
    out, summary = gemma_sweep
    df = load_dataframe(out)
    assert len(df) == len(summary.records)
    assert {"settings.cache_type_k", "measured.tg.tps_mean", "check.kv_exact", "status"} <= set(df.columns)
    assert isinstance(df[df.status == "ok"]["measured.tg.samples_tps"].iloc[0], list)
    assert (out / "results.csv").read_text().count("\n") == len(summary.records) + 1


def test_crash_in_worker_costs_one_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFPROF_WORKER_ABORT", "ctk=q8_0")
    info = load_model_info(fixture_path("llama-gqa"))
    s = Sweep(info, spec(cache_types=[("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0")], flash_attn=["on"]), tmp_path)
    summary = s.run()
    assert [r.status for r in summary.records] == ["ok", "failed", "ok"]
    failed = summary.records[1]
    assert "SIGABRT" in failed.reason and "GGUFPROF_WORKER_ABORT matched" in failed.reason
    assert [r.status for r in read_records(tmp_path / "results.jsonl")] == ["ok", "failed", "ok"]


def test_resume_runs_only_what_is_missing(tmp_path):
    info = load_model_info(fixture_path("llama-gqa"))
    first = Sweep(info, spec(cache_types=[("f16", "f16")], flash_attn=["on"]), tmp_path).run()
    assert len(first.records) == 1
    second = Sweep(info, spec(cache_types=[("f16", "f16"), ("q8_0", "q8_0")], flash_attn=["on"]), tmp_path,
                   resume=True).run()
    assert second.resumed == 1
    assert [r.settings["cache_type_k"] for r in second.records] == ["q8_0"]
    assert len(list(read_records(tmp_path / "results.jsonl"))) == 2


def test_timeout_is_a_failed_record(tmp_path):
    info = load_model_info(fixture_path("llama-gqa"))
    summary = Sweep(info, spec(cache_types=[("f16", "f16")], flash_attn=["on"]), tmp_path, timeout=0.05).run()
    (r,) = summary.records
    assert r.status == "failed" and r.reason.startswith("timed out after 0.05 s")


def test_context_the_machine_cannot_hold_is_skipped(tmp_path):
    import psutil

    info = load_model_info(fixture_path("llama-gqa"))
    huge = (psutil.virtual_memory().total // bytes_per_token(info, "f16")) // 256 * 256 + 256 * 1024
    summary = Sweep(info, spec(cache_types=[("f16", "f16")], flash_attn=["on"], ctx_sizes=[huge]), tmp_path).run()
    (r,) = summary.records
    assert r.status == "skipped" and "this machine has" in r.reason


def test_strict_counts_mismatches():
    ok = Record(id="a", status="ok", settings={}, check={"kv_exact": True, "rss_explained": True})
    bad = Record(id="b", status="ok", settings={}, check={"kv_exact": False, "rss_explained": True})
    assert SweepSummary(out_dir=None, records=[ok]).mismatches == 0
    assert SweepSummary(out_dir=None, records=[ok, bad]).mismatches == 1


def test_sweep_cli_and_results(tmp_path):
    runner = CliRunner(mix_stderr=False)
    out = tmp_path / "out"
    r = runner.invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(out), "-ct", "f16,q8_0",
                            "-c", "512", "-d", "0", "-p", "32", "-n", "8", "-r", "2", "-t", "2"])
    assert r.exit_code == 0, r.output
    assert "2 measured, 0 skipped, 0 failed; 0 disagree" in r.stdout
    r = runner.invoke(app, ["results", str(out)])
    assert r.exit_code == 0 and "q8_0" in r.stdout
    r = runner.invoke(app, ["results", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no results.jsonl here" in r.stderr


def test_one_repetition_shows_no_spread_and_no_trust(tmp_path):
    """-r 1: the sweep table says "±n/a" (never "±0") and marks the speeds ~ by compare's rule (fewer
    than 2 samples), a legend line explains seqs' u, ×n and ~; ``results`` marks the same speeds and
    says why, and marks nothing once the samples are made quiet."""
    from .edited_results import calm, write_copy

    runner = CliRunner(mix_stderr=False)
    out = tmp_path / "out"
    r = runner.invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(out), "-ct", "f16",
                            "-c", "512", "-d", "0", "-p", "32", "-n", "8", "-r", "1", "-t", "2"])
    assert r.exit_code == 0, r.output
    (row,) = [ln for ln in r.stdout.splitlines() if ln.startswith("f16/f16")]
    assert row.count("±n/a") == 2 and row.count("~") == 2 and "±0" not in row
    legend = " ".join(r.stdout.split())
    assert "u: in one unified cache" in legend and "×n: the aggregate of n sequences" in legend
    r = runner.invoke(app, ["results", str(out)])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and lines[1].count("~") == 2 and lines[-1].startswith("~: a speed not to be trusted")
    quiet = write_copy(out, tmp_path / "quiet", calm)
    r = runner.invoke(app, ["results", str(quiet)])
    assert r.exit_code == 0 and "~" not in r.stdout, r.stdout


@pytest.mark.parametrize("args,msg", [
    (["-ct", "q6_k"], "unsupported cache type 'q6_k'"),
    (["-c", "0"], "--ctx-sizes: every value must be >= 1"),
    (["-fa", "maybe"], "--flash-attn"),
    (["--swa-full", "sometimes"], "--swa-full: expected on, off or both"),
    (["-r", "0"], "--repetitions must be auto or an integer >= 1"),
    (["-np", "257"], "--parallel must be between 1 and 256"),
    (["-ub", "0"], "--ubatch-size must be an integer from 1"),
    (["-b", "4294967296"], "--batch-size must be an integer from 1 to 4294967295"),
    (["-c", "4294967296"], "--ctx-size must be an integer from 0 to 4294967295"),
    (["-c", "1e20"], "--ctx-sizes: expected a number of tokens"),
    (["--timeout", "0"], "--timeout must be a number of seconds > 0"),
    (["--timeout", "-1"], "--timeout must be a number of seconds > 0"),
    (["--timeout", "nan"], "--timeout must be a number of seconds > 0"),
    (["-ct", "q8_0:"], "--cache-types: an empty cache type"),
])
def test_sweep_bad_options(tmp_path, args, msg):
    """Refused before anything runs: exit 2, one line, and the previous results are not rotated."""
    (tmp_path / "results.jsonl").write_text("previous\n")
    r = CliRunner(mix_stderr=False).invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(tmp_path)] + args)
    assert r.exit_code == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (tmp_path / "results.jsonl").read_text() == "previous\n" and not list(tmp_path.glob("*.bak"))


def test_llama_bench_habits_are_understood(tmp_path):
    """-ctk/-ctv lists (the cross product, as llama-bench), 32k sizes, -fa 1, duplicates dropped; and
    llama-bench's `-o json` is not silently taken for a directory."""
    from ggufprof.flags import parse_cache_types, parse_count_list, parse_flash_attn_list

    assert parse_cache_types(None, "f16,q8_0", "f16,q8_0") == [("f16", "f16"), ("f16", "q8_0"), ("q8_0", "f16"),
                                                             ("q8_0", "q8_0")]
    assert parse_cache_types("f16,f16,F16,q8_0:q4_0") == [("f16", "f16"), ("q8_0", "q4_0")]
    assert parse_count_list("32k,4096,4k", "-c") == [32768, 4096]
    assert parse_flash_attn_list("1,0,auto,on") == ["on", "off", "auto"]
    r = CliRunner(mix_stderr=False).invoke(app, ["sweep", str(fixture_path("llama-gqa")), "-o", "json", "-c", "512"])
    assert r.exit_code == 2 and "llama-bench's -o is a format" in r.stderr
    assert f"Use --out {Path.cwd() / 'json'} to mean a directory named json" in r.stderr  # advice that works
    r = CliRunner(mix_stderr=False).invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(tmp_path), "-ctk", "f16,q8_0",
                                 "-ctv", "f16", "-c", "1k", "-d", "0", "-p", "16", "-n", "4", "-r", "1", "-fa", "1"])
    assert r.exit_code == 0, r.output
    ids = [rec.id for rec in read_records(tmp_path / "results.jsonl")]
    assert len(ids) == 2 and all("c=1024" in i and "fa=on" in i for i in ids)


def _suite_model(name: str):
    from .archs_suite import suite_dir

    path = suite_dir() / name
    if not path.exists():
        pytest.fail(f"{path} missing: run scripts/archs_suite.sh (make archs)")
    return load_model_info(path)


def test_hybrid_model_sweeps_with_recurrent_state_checked(tmp_path):
    """qwen35 (attention + gated delta net layers): the RS buffer is measured and checked too."""
    info = _suite_model("qwen35-dense.gguf")
    summary = Sweep(info, spec(cache_types=[("f16", "f16")], flash_attn=["auto"], parallel=[2], kv_unified=[True]),
                    tmp_path).run()
    (r,) = summary.records
    assert r.status == "ok", r.reason
    assert r.check["kv_exact"] is True, r.check["kv_mismatches"]
    kinds = [c["kind"] for c in r.measured["kv"]["caches"]]
    assert kinds == ["kv", "rs"] and r.predicted["recurrent_bytes"] > 0


def test_model_without_a_prediction_is_still_measured(tmp_path, monkeypatch):
    """A memory we cannot predict (as a future llama.cpp architecture would be) is measured all the
    same: the record says why there is no prediction and keeps every logged buffer."""
    from ggufprof.memory import create

    info = _suite_model("qwen35-dense.gguf")
    monkeypatch.setitem(create.UNMODELLED, "qwen35", "qwen35's memory is not modelled (test)")
    summary = Sweep(info, spec(cache_types=[("f16", "f16")], flash_attn=["auto"]), tmp_path).run()
    (r,) = summary.records
    assert r.status == "ok", r.reason
    assert r.check["kv_exact"] is None and "not modelled (test)" in r.check["prediction"]
    assert [c["kind"] for c in r.measured["kv"]["caches"]] == ["kv", "rs"]
    assert r.measured["pp"]["tps_mean"] > 0 and summary.mismatches == 0
    assert validate(json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])) == []


def test_parallel_sequences_are_timed_together(tmp_path):
    """-np 3: every sequence's prompt in one batch and one token per sequence per step, as
    llama-batched-bench; tokens/s is the aggregate (S_PP / S_TG) and records n_seq."""
    info = load_model_info(fixture_path("llama-gqa"))
    summary = Sweep(info, spec(cache_types=[("f16", "f16")], flash_attn=["auto"], parallel=[1, 3],
                               kv_unified=[False, True], depths=[0, 32], n_prompt=32, n_gen=8, repetitions=2),
                    tmp_path).run()
    recs = {(r.settings["parallel"], r.settings["kv_unified"], r.settings["depth"]): r for r in summary.records}
    assert all(r.status == "ok" for r in recs.values()), [r.reason for r in recs.values()]
    for (par, _, _), r in recs.items():
        for test, n in (("pp", 32), ("tg", 8)):
            block = r.measured[test]
            assert block["n_seq"] == par and block["tokens_per_seq"] == n and block["n_tokens"] == n * par
            assert block["tps_mean"] > 0 and abs(block["tps_per_seq"] * par - block["tps_mean"]) < 1e-6
            assert len(block["samples_noise"]) == 2 and "loadavg1" in block["samples_noise"][0]


def test_records_carry_the_whole_footprint(gemma_sweep):
    """predicted.total per device (compute from the run's own log) and RSS after the warm-up decode
    within it: an allocation bounds what is resident."""
    _, summary = gemma_sweep
    for r in (x for x in summary.records if x.status == "ok"):
        cpu = r.predicted["total"]["CPU"]
        assert cpu["total_bytes"] == sum(cpu[k] for k in ("weights_bytes", "repack_bytes", "kv_bytes",
                                                         "recurrent_bytes", "compute_bytes", "output_bytes",
                                                         "graph_bytes"))
        assert cpu["kv_bytes"] == r.predicted["kv_bytes"] and cpu["compute_bytes"] > 0
        c = r.check
        assert c["total_within_prediction"] is (None if gpu_backend(r) else True), \
            (r.id, c["rss_growth_after_warmup"], c["total_host_predicted"])
        assert c["total_resident_share"] > 0  # tiny fixture: runtime overhead (MiBs) can exceed its total


def test_repacked_weights_checked_in_every_record(tmp_path):
    """A Q4_0 model: each record compares the predicted CPU_REPACK buffer with the one llama.cpp logged
    (and with --no-repack, none); the whole-footprint check counts it."""
    from ggufprof.memory.caches import mib_f64

    info = load_model_info(fixture_path("llama-q4_0"))
    recs = []
    for repack in (True, False):
        s = spec(cache_types=[("f16", "f16")], flash_attn=["auto"], placement=PlacementFlags(repack=repack), repetitions=1)
        recs += Sweep(info, s, tmp_path / str(repack)).run().records
    on, off = recs
    assert on.status == off.status == "ok"
    for r in (on, off):
        assert r.check["weights_repack_exact"] is True and r.check["kv_exact"], r.check
        assert r.check["total_within_prediction"] is not False
        assert r.predicted["total"]["CPU"]["repack_bytes"] == r.check["weights_repack_predicted"]
    assert off.check["weights_repack_predicted"] == 0 and "CPU_REPACK" not in off.measured["model_buffers_mib"]
    logged = on.measured["model_buffers_mib"].get("CPU_REPACK")
    assert (logged is None) == (on.check["weights_repack_predicted"] == 0)  # a CPU without a repacking kernel
    if logged is not None:
        assert mib_f64(on.check["weights_repack_predicted"]) == logged
