"""The upgrade question end to end: the same sweep on two llama.cpp builds (the wheel's libraries and
the tools build of the same source, `make archs`), compared; the gate names both builds."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.results.store import load_records

from .archs_suite import llama_tools_bin
from .conftest import fixture_path

runner = CliRunner(mix_stderr=False)
ARGS = ["-ct", "f16,q8_0", "-c", "512", "-d", "0", "-p", "16", "-n", "4", "-r", "3", "-t", "2"]


def test_two_builds_compared_end_to_end(tmp_path, monkeypatch):
    tools = llama_tools_bin()
    if not (tools / "libllama.so").exists():
        pytest.fail(f"{tools}/libllama.so is missing: run make archs (scripts/build_llama_tools.sh) first")
    monkeypatch.delenv("LLAMA_CPP_LIB_PATH", raising=False)  # --llama-lib sets it for this process: undone after
    model = str(fixture_path("llama-gqa"))
    base = runner.invoke(app, ["sweep", model, "--out", str(tmp_path / "base"), *ARGS])
    assert base.exit_code == 0, base.output
    new = runner.invoke(app, ["sweep", model, "--out", str(tmp_path / "new"), *ARGS, "--llama-lib", str(tools)])
    assert new.exit_code == 0, new.output
    built = {side: {r.env["llama_build"]["lib_dir"] for r in load_records(tmp_path / side)} for side in ("base", "new")}
    assert built["new"] == {str(tools.resolve())} and built["base"] != built["new"]

    r = runner.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "new"), "-f", "json"])
    d = json.loads(r.stdout)
    assert d["builds_differ"] and str(tools.resolve()) in d["builds"]["new"][0]
    assert not [x for x in d["regressions"] if x["metric"].startswith("kv")]  # the KV cache is the same bytes
    assert r.exit_code == d["exit_code"] in (0, 1, 3)
    table = runner.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "new")]).stdout
    assert "llama.cpp: baseline ggml " in " ".join(table.split()) and str(tools.resolve()) in " ".join(table.split())
    same = json.loads(runner.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "base"), "-f", "json"]).stdout)
    assert not same["builds_differ"]
