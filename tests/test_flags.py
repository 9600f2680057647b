"""flags.py: command-line values as llama.cpp users write them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.errors import GgufprofError
from ggufprof.flags import ALL_GPU_LAYERS, parse_gpu_layers, parse_gpu_layers_list

from .conftest import fixture_path


@pytest.mark.parametrize("text,expected", [("all", ALL_GPU_LAYERS), ("ALL", ALL_GPU_LAYERS), ("-1", ALL_GPU_LAYERS),
                                           ("0", 0), ("12", 12), ("999", 999)])
def test_gpu_layers_as_llama_cpp_takes_them(text, expected):
    assert parse_gpu_layers(text) == expected


@pytest.mark.parametrize("text,message", [("auto", "ggufprof fit"), ("-2", ">= 0"), ("abc", "number of layers"),
                                          ("1.5", "number of layers"), ("", "number of layers")])
def test_gpu_layers_refused(text, message):
    with pytest.raises(GgufprofError, match=message):
        parse_gpu_layers(text)


def test_gpu_layers_list():
    assert parse_gpu_layers_list("all,12,-1,0") == [ALL_GPU_LAYERS, 12, 0]
    with pytest.raises(GgufprofError):
        parse_gpu_layers_list(",")


def test_ngl_all_is_every_layer_in_the_cli():
    """-ngl all and -ngl -1 place the same (every layer plus the output layer); -ngl auto is one Error line."""
    runner = CliRunner(mix_stderr=False)
    m = str(fixture_path("llama-gqa"))
    outs = [runner.invoke(app, ["estimate", m, "-c", "1024", "-ngl", n, "--json"]) for n in ("all", "-1", "2")]
    assert all(o.exit_code == 0 for o in outs), [o.output for o in outs]
    assert outs[0].stdout == outs[1].stdout != outs[2].stdout
    r = runner.invoke(app, ["estimate", m, "-ngl", "auto"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "auto" in r.stderr
