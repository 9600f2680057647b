"""results/checks.py on real GPU records: the H100 sweep of the gemma3 fixture committed under
benchmarks/h100/fit/ is rechecked here (predictions, placement and checks recomputed from its stored
llama.cpp logs and NVML figures; nothing re-measured), so the GPU path is tested without a GPU."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.results.checks import VRAM_TOTAL_TOL, failed_checks

from .conftest import ROOT, fixture_path

H100_SWEEP = ROOT / "benchmarks" / "h100" / "fit" / "sweep-gemma3"
runner = CliRunner(mix_stderr=False)
MIB = 1 << 20


def _records(path):
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines() if line.strip()]


def _recheck(tmp_path):
    r = runner.invoke(app, ["sweep", str(fixture_path("gemma3-swa")), "--out", str(tmp_path), "--recheck", "--strict"])
    return r, _records(tmp_path)


def test_h100_records_recheck_to_the_same_footprint(tmp_path):
    shutil.copytree(H100_SWEEP, tmp_path, dirs_exist_ok=True)
    stored = _records(H100_SWEEP)
    r, rechecked = _recheck(tmp_path)
    assert r.exit_code == 0, r.output
    assert len(rechecked) == len(stored) == 6
    for old, new in zip(stored, rechecked):
        c = new["check"]
        assert c["kv_exact"] and c["weights_gpu_exact"] and c["vram_explained"] and c["vram_total_explained"], new["id"]
        assert c["total_gpu_predicted"] == old["check"]["total_gpu_predicted"] > 0
        v = new["measured"]["vram"]
        # the judged growth runs from the CUDA context (not from process start: that adds ~0.5 GiB)
        assert c["vram_growth_total"] == v["after_context_process"] - v["after_init_process"]
        assert v["after_init_process"] - v["baseline_process"] > 100 * MIB
        assert 0 < c["vram_total_error"] <= VRAM_TOTAL_TOL
        assert c["vram_unlogged_after_warmup"] == v["after_warmup_process"] - v["after_context_process"] > 0


def test_vram_beyond_the_stated_tolerance_fails_the_check(tmp_path):
    shutil.copytree(H100_SWEEP, tmp_path, dirs_exist_ok=True)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["measured"]["vram"]["after_context_process"] += VRAM_TOTAL_TOL  # 16 MiB more than logged buffers explain
    lines[0] = json.dumps(rec)
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    r, rechecked = _recheck(tmp_path)
    assert r.exit_code == 1, r.output
    assert "vram_total_explained" in failed_checks(rechecked[0]["check"])
    assert not any(failed_checks(x["check"]) for x in rechecked[1:])
