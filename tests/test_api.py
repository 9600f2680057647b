"""The library façade (ggufprof/api.py): what a notebook calls is what the CLI calls."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import ggufprof
from ggufprof.cli import app

from .conftest import fixture_path


def test_estimate_and_fit_as_functions_equal_the_cli():
    model = fixture_path("gemma3-swa")
    est = ggufprof.estimate(model, ctx_size=4096, cache_type_k="q8_0", cache_type_v="q8_0", total=True)
    cli = json.loads(CliRunner(mix_stderr=False).invoke(
        app, ["estimate", str(model), "-c", "4096", "-ct", "q8_0", "--total", "--json"]).stdout)
    assert est.prediction.kv_bytes == cli["kv_bytes"] and est.defaults == cli["defaults"] == "tools"
    assert {d.device: d.total_bytes for d in est.devices} == {k: v["total_bytes"] for k, v in cli["total"].items()}
    report = ggufprof.fit(model, memory="1.02 GiB", cache_types="f16,q4_0")
    cli = json.loads(CliRunner(mix_stderr=False).invoke(
        app, ["fit", str(model), "--memory", "1.02GiB", "-ct", "f16,q4_0", "--json"]).stdout)
    assert report.to_json() == cli
    assert report.commands(report.best)["llama-server"].startswith(f"llama-server -m {model} -c ")


def test_every_name_of_the_facade_is_there():
    for name in ggufprof.__all__:
        assert getattr(ggufprof, name) is not None, name
