"""The small inconsistencies of issue 22, each held by a test on the real commands and fixtures:
``-t 0`` read as llama.cpp reads it everywhere, output that survives an ASCII-only terminal,
``export -o json`` refused, and estimate's JSON naming what its ``total_bytes`` counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.flags import parse_threads

from .conftest import ROOT, fixture_path

runner = CliRunner(mix_stderr=False)
MODEL = str(fixture_path("llama-gqa"))


def test_threads_zero_is_every_logical_cpu_as_llama_cpp_reads_it(tmp_path):
    """common/arg.cpp: ``-t N`` with N <= 0 becomes std::thread::hardware_concurrency(). sweep, quality
    and speedup now all read it so (sweep used the default, quality and speedup refused it)."""
    logical = os.cpu_count()
    assert parse_threads(0) == parse_threads(-1) == logical and parse_threads(3) == 3 and parse_threads(None) is None
    r = runner.invoke(app, ["sweep", MODEL, "-o", str(tmp_path / "s"), "-ct", "f16", "-c", "256", "-d", "0",
                            "-p", "8", "-n", "4", "-r", "1", "-t", "0"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "s" / "results.jsonl").read_text().splitlines()[0])
    assert rec["settings"]["threads"] == logical
    r = runner.invoke(app, ["quality", MODEL, "-ct", "q8_0", "-c", "128", "--chunks", "1", "-t", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["run"]["threads"] == logical
    r = runner.invoke(app, ["speedup", MODEL, "-n", "2", "-r", "1", "-t", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["settings"]["threads"] == logical


@pytest.mark.parametrize("args", [["inspect", MODEL], ["estimate", MODEL, "-c", "4096"],
                                  ["estimate", MODEL, "--total"], ["fit", MODEL, "--memory", "2GiB"],
                                  ["explain", MODEL]])
def test_an_ascii_terminal_gets_ascii_not_a_traceback(args):
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "ggufprof", *args], capture_output=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr.decode()
    assert b"UnicodeEncodeError" not in r.stderr
    # rich's tables and lines become ASCII; explain's lines go through click, which writes UTF-8 to a
    # stream it finds ASCII-only (its own rule): no error either way
    text = r.stdout.decode("utf-8" if args[0] == "explain" else "ascii")
    if args[0] in ("inspect", "estimate", "fit"):
        assert " - " in text  # the "·" separators, as ASCII


def test_an_ascii_terminal_compares(sweep_dirs):
    d = sweep_dirs["llama-gqa"]
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "ggufprof", "compare", str(d), str(d), "--allow-noisy"],
                       capture_output=True, env=env, cwd=ROOT)
    assert r.returncode == 0 and b"UnicodeEncodeError" not in r.stderr, r.stderr.decode()
    r.stdout.decode("ascii")


@pytest.mark.parametrize("word", ["json", "jsonl", "csv", "md", "sql", "llama-bench", "JSON"])
def test_export_refuses_a_format_word_as_its_file(sweep_dirs, tmp_path, monkeypatch, word):
    """``export -o json`` meant the format (llama-bench's -o): refused, one line, nothing written;
    ./json names a file and is written."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["export", str(sweep_dirs["llama-gqa"]), "-o", word])
    assert r.exit_code == 2 and r.stderr.startswith(f"Error: -o {word}: export's -o/--output is the file"), r.stderr
    assert list(tmp_path.iterdir()) == []
    r = runner.invoke(app, ["export", str(sweep_dirs["llama-gqa"]), "-o", f"./{word}"])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / word).read_text().splitlines()) == 24  # a pp and a tg test per configuration


def test_estimate_json_names_what_total_bytes_counts():
    """``total_bytes`` (kept) is KV + recurrent state; ``kv_and_state_bytes`` says so by name; with
    --total the whole footprint is ``footprint_bytes``, the sum of the devices' totals."""
    d = json.loads(runner.invoke(app, ["estimate", str(fixture_path("gemma3-swa")), "-c", "4096", "--json"]).stdout)
    assert d["kv_and_state_bytes"] == d["total_bytes"] == d["kv_bytes"] + d["recurrent_bytes"]
    assert d["total_bytes"] == sum(c["bytes"] for c in d["caches"])
    t = json.loads(runner.invoke(app, ["estimate", MODEL, "--total", "--json"]).stdout)
    assert t["footprint_bytes"] == sum(dev["total_bytes"] for dev in t["total"].values())
    assert t["footprint_bytes"] > t["total_bytes"] == t["kv_and_state_bytes"]
