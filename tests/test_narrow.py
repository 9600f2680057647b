"""Tables on an 80-column terminal (and 120): the key numbers are never cut with an ellipsis."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app

from .conftest import fixture_path

runner = CliRunner(mix_stderr=False)


def run(columns: int, *args: str):
    r = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})
    assert r.exit_code in (0, 1), r.output
    return r


def squeeze(text: str) -> str:
    """The output with line breaks inside table cells undone enough to find a folded number."""
    return " ".join(text.split())


@pytest.mark.parametrize("columns", [80, 120])
def test_fit_estimate_and_quality_fit_the_terminal(columns):
    fit = run(columns, "fit", fixture_path("gemma3-swa"), "--memory", "1.02GiB", "-np", "2", "-ct", "f16,q8_0:q4_0")
    rows = json.loads(run(columns, "fit", fixture_path("gemma3-swa"), "--memory", "1.02GiB", "-np", "2",
                          "-ct", "f16,q8_0:q4_0", "--json").stdout)
    total = run(columns, "estimate", fixture_path("llama-q4_0"), "-c", "32k", "-np", "4", "--total")
    quality = run(columns, "quality", fixture_path("llama-gqa"), "-c", "64", "--chunks", "2", "-ct", "f16,q8_0,q4_0",
                  "-t", "2")
    for r in (fit, total, quality):
        assert "…" not in r.stdout
        assert max(len(line) for line in r.stdout.splitlines()) <= columns
    for row in rows:
        assert f"{row['ctx_size']:,}" in fit.stdout and f"{row['n_ctx_seq']:,}" in fit.stdout
    repack = json.loads(run(columns, "estimate", fixture_path("llama-q4_0"), "-c", "32k", "-np", "4", "--total",
                            "--json").stdout)["total"]["CPU"]["repack_bytes"]
    assert "q8_0/q4_0" in fit.stdout and ("repacked" in total.stdout) == (repack > 0)
    assert "q4_0/q4_0" in quality.stdout and "top-1" in squeeze(quality.stdout)
