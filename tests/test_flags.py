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


def test_command_line_says_every_setting_llama_server_would_not_default():
    from ggufprof.flags import command_line
    from ggufprof.memory.settings import KVSettings

    s = KVSettings(ctx_size=8192, cache_type_k="q8_0", cache_type_v="q4_0", parallel=2, kv_unified=True, swa_full=True,
                   flash_attn="on", ubatch_size=128)
    assert command_line("llama-server", ["-m", "m.gguf"], s, ALL_GPU_LAYERS, offload_kqv=False) == (
        "llama-server -m m.gguf -c 8192 -ctk q8_0 -ctv q4_0 -np 2 -kvu --swa-full -fa on -ub 128 -ngl all -nkvo --fit off")
    # the tools' own defaults are left out, but llama-server's -np auto (4 unified slots) is never relied on
    assert command_line("llama-server", ["-m", "a b.gguf"], KVSettings(ctx_size=4096, swa_full=False), 0) == (
        "llama-server -m 'a b.gguf' -c 4096 -np 1 -ngl 0 --fit off")
    assert command_line("llama-cli", ["-m", "m.gguf"], KVSettings(ctx_size=4096, swa_full=False), None) == (
        "llama-cli -m m.gguf -c 4096 --fit off")
