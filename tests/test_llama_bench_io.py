"""llama-bench interop: export a real sweep as llama-bench JSONL, import it back, import real llama-bench output.

tests/data/llama-bench-llama-gqa.jsonl is real llama-bench output (the vendored llama.cpp, CPU):
    llama-bench -m fixtures/llama-gqa.gguf -p 64 -n 16 -r 3 -t 2 --repack 0 -ctk q8_0 -ctv q8_0 -fa 1 -o jsonl
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.results.llama_bench_io import FIELDS, import_llama_bench
from ggufprof.results.store import load_records
from ggufprof.results.schema import validate

SAMPLE = Path(__file__).parent / "data" / "llama-bench-llama-gqa.jsonl"
runner = CliRunner(mix_stderr=False)

# scripts/compare-llama-bench.py (vendored llama.cpp): the columns it stores, and the keys it joins
# baseline and compare rows on (every one must be present and non-null, or no row matches)
DB_FIELDS = [
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type", "model_size",
    "model_n_params", "n_batch", "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll", "type_k", "type_v",
    "n_gpu_layers", "split_mode", "main_gpu", "no_kv_offload", "flash_attn", "tensor_split", "tensor_buft_overrides",
    "load_mode", "embeddings", "no_op_offload", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns",
    "avg_ts", "stddev_ts", "n_cpu_moe", "fit_target", "fit_min_ctx",
]
KEY_PROPERTIES = [
    "cpu_info", "gpu_info", "backends", "n_gpu_layers", "n_cpu_moe", "tensor_buft_overrides", "model_filename",
    "model_type", "n_batch", "n_ubatch", "embeddings", "cpu_mask", "cpu_strict", "poll", "n_threads", "type_k", "type_v",
    "load_mode", "no_kv_offload", "split_mode", "main_gpu", "tensor_split", "flash_attn", "n_prompt", "n_gen", "n_depth",
    "fit_target", "fit_min_ctx",
]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(sweep_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "gqa.jsonl"
    r = invoke("export", sweep_dirs["llama-gqa"], "--format", "llama-bench", "--output", out)
    assert r.exit_code == 0, r.output
    return [json.loads(ln) for ln in out.read_text().splitlines()]


def test_export_has_llama_bench_fields_and_types(exported, sweep_dirs):
    real = json.loads(SAMPLE.read_text().splitlines()[0])
    ok = [r for r in load_records(sweep_dirs["llama-gqa"]) if r.status == "ok"]
    assert len(exported) == 2 * len(ok)  # a pp and a tg test per configuration
    for line in exported:
        theirs = [k for k in real]
        assert [k for k in line if k in real] == theirs  # llama-bench's fields, in its order
        for k in theirs:
            assert type(line[k]) is type(real[k]), (k, line[k], real[k])
        assert (line["n_prompt"] == 0) != (line["n_gen"] == 0)
        assert len(line["samples_ns"]) == len(line["samples_ts"]) == 3
    assert list(FIELDS) == [k for k in real if k not in ("samples_ns", "samples_ts")]


def test_export_readable_by_compare_llama_bench(sweep_dirs, tmp_path):
    """Load two exports the way compare-llama-bench.py does (its SQLite table and join)."""
    lines = []
    for build in ("base1234", "new56789"):
        r = invoke("export", sweep_dirs["llama-gqa"], "--build-commit", build)
        assert r.exit_code == 0
        lines += [json.loads(ln) for ln in r.stdout.splitlines()]
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE llama_bench({', '.join(DB_FIELDS)})")
    required = set(KEY_PROPERTIES + ["build_commit", "test_time", "avg_ts"])
    for line in lines:
        parsed = {k: v for k, v in line.items() if k in DB_FIELDS}
        assert required <= parsed.keys()
        assert all(parsed[k] is not None for k in required)
        db.execute(f"INSERT INTO llama_bench({', '.join(parsed)}) VALUES({', '.join('?' * len(parsed))})",
                   tuple(parsed.values()))
    equal = " AND ".join([f"tb.{p} = tc.{p}" for p in KEY_PROPERTIES]
                         + ["tb.build_commit = 'base1234'", "tc.build_commit = 'new56789'"])
    rows = db.execute(f"SELECT tb.type_k, tb.n_prompt, tb.n_gen, tb.n_depth, AVG(tb.avg_ts), AVG(tc.avg_ts) "
                      f"FROM llama_bench tb JOIN llama_bench tc ON {equal} "
                      "GROUP BY tb.type_k, tb.n_prompt, tb.n_gen, tb.n_depth").fetchall()
    # llama-bench has no ctx_size: 3 cache types x 2 depths x (pp, tg), the two ctx sizes averaged
    assert len(rows) == 12 and all(r[4] > 0 and r[5] > 0 for r in rows)


def test_export_import_round_trip(exported, sweep_dirs, tmp_path):
    src = tmp_path / "exported.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in exported))
    r = invoke("import", src, "--out", tmp_path / "imported")
    assert r.exit_code == 0, r.output
    back = {rec.id: rec for rec in load_records(tmp_path / "imported")}
    ok = [rec for rec in load_records(sweep_dirs["llama-gqa"]) if rec.status == "ok"]
    assert set(back) == {rec.id for rec in ok}
    for rec in ok:
        b = back[rec.id]
        assert b.settings == rec.settings
        assert b.env["source"] == "llama-bench" and b.model["sha256"] == rec.model["sha256"]
        for test in ("pp", "tg"):
            assert b.measured[test]["samples_tps"] == rec.measured[test]["samples_tps"]
        assert validate(b.to_dict()) == []


def test_import_real_llama_bench_output(tmp_path):
    summary = import_llama_bench(SAMPLE)
    assert summary.lines == 2 and summary.ignored_pg == 0
    (rec,) = summary.records  # the pp and the tg test paired into one record
    real = [json.loads(ln) for ln in SAMPLE.read_text().splitlines()]
    assert validate(rec.to_dict()) == []
    s = rec.settings
    assert (s["cache_type_k"], s["cache_type_v"], s["flash_attn"], s["threads"]) == ("q8_0", "q8_0", "on", 2)
    assert (s["n_prompt"], s["n_gen"], s["depth"], s["repetitions"], s["repack"]) == (64, 16, 0, 3, False)
    assert (s["parallel"], s["swa_full"], s["ctx_size"]) == (1, False, 64)  # llama-bench's own context rules
    assert rec.measured["pp"]["samples_tps"] == real[0]["samples_ts"]
    assert rec.measured["tg"]["samples_tps"] == real[1]["samples_ts"]
    assert rec.env["source"] == "llama-bench" and rec.env["build_commit"] == real[0]["build_commit"]
    r = invoke("import", SAMPLE, "--out", tmp_path / "lb")
    assert r.exit_code == 0 and "1 records" in r.stdout
    assert [x.id for x in load_records(tmp_path / "lb")] == [rec.id]
    assert invoke("compare", tmp_path / "lb", tmp_path / "lb").exit_code == 0


def test_import_refuses_what_is_not_llama_bench(tmp_path, sweep_dirs):
    r = invoke("import", sweep_dirs["llama-gqa"] / "results.jsonl", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "not a llama-bench result" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n_prompt": 1\n')
    assert invoke("import", bad, "--out", tmp_path / "y").exit_code == 2


def test_validate_exempts_only_llama_bench_records():
    d = import_llama_bench(SAMPLE).records[0].to_dict()
    assert validate(d) == []
    d["env"]["source"] = "ggufprof"  # our own ok records still need kv, rss and the checks
    assert {p.split(":")[0] for p in validate(d)} == {"measured.kv", "measured.rss", "check.kv_exact",
                                                     "check.kv_mismatches"}
    d["env"]["source"] = "llama-bench"
    del d["measured"]["tg"]
    assert validate(d) == ["measured.tg: missing in an ok record"]
