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
    from ggufprof.memory.placement import PlacementFlags
    from ggufprof.memory.settings import KVSettings

    s = KVSettings(ctx_size=8192, cache_type_k="q8_0", cache_type_v="q4_0", parallel=2, kv_unified=True, swa_full=True,
                   flash_attn="on", ubatch_size=128)
    assert command_line("llama-server", ["-m", "m.gguf"], s, PlacementFlags(n_gpu_layers=ALL_GPU_LAYERS),
                        offload_kqv=False) == (
        "llama-server -m m.gguf -c 8192 -ctk q8_0 -ctv q4_0 -np 2 -kvu --swa-full -fa on -ub 128 -ngl all -nkvo --fit off")
    # the tools' own defaults are left out, but llama-server's -np auto (4 unified slots) is never relied on
    assert command_line("llama-server", ["-m", "a b.gguf"], KVSettings(ctx_size=4096, swa_full=False),
                        PlacementFlags()) == "llama-server -m 'a b.gguf' -c 4096 -np 1 -ngl 0 --fit off"
    assert command_line("llama-cli", ["-m", "m.gguf"], KVSettings(ctx_size=4096, swa_full=False), None) == (
        "llama-cli -m m.gguf -c 4096 --fit off")


def test_command_line_carries_every_placement_flag_and_llama_bench_spells_them_its_way():
    """fit's answers end in a command with exactly the flags of the placement (common/arg.cpp's
    names); llama-bench has no -c (n_prompt + n_gen + n_depth is its context), joins -ot patterns
    with ';' and devices/splits with '/', and has -ncmoe but no --cpu-moe/--n-cpu-ffn."""
    from ggufprof.flags import command_line
    from ggufprof.memory.placement import LLM_FFN_EXPS_REGEX, PlacementFlags
    from ggufprof.memory.settings import KVSettings

    p = PlacementFlags(n_gpu_layers=7, tensor_split=(3.0, 1.0), rpc=("127.0.0.1:5001", "127.0.0.1:5002"),
                       overrides=(("attn_q", "CPU"),), n_cpu_moe=2, n_cpu_ffn=1, cpu_moe=True, repack=False)
    s = KVSettings(ctx_size=4096, swa_full=False, ubatch_size=128)
    server = command_line("llama-server", ["-m", "m.gguf"], s, p)
    assert server == ("llama-server -m m.gguf -c 4096 -np 1 -ub 128 -ngl 7 --rpc 127.0.0.1:5001,127.0.0.1:5002 -ts 3,1 "
                      "-ot attn_q=CPU -cmoe -ncmoe 2 -ncffn 1 --no-repack --fit off")
    bench = command_line("llama-bench", ["-m", "m.gguf"], s, p).split()
    assert bench[bench.index("-p") + 1:bench.index("-p") + 6:2] == ["512", "128", "3456"]  # 512 + 128 + 3456 = 4096
    assert bench[bench.index("-ts") + 1] == "3/1" and bench[bench.index("-ncmoe") + 1] == "2"
    ot = bench[bench.index("-ot") + 1].strip("'").split(";")
    assert ot == ["attn_q=CPU", f"{LLM_FFN_EXPS_REGEX}=CPU", r"blk\.0\.ffn_(up|down|gate)\.=CPU"]
    assert "-ngl 999" in " ".join(bench) or bench[bench.index("-ngl") + 1] == "7"


@pytest.mark.parametrize("args,expected", [
    ({}, "auto"), ({"load_mode": "none"}, "none"), ({"load_mode": "MMAP+MLOCK"}, "mmap+mlock"),
    ({"load_mode": "dio"}, "dio"),
    # older llama.cpp: use_mmap on and use_mlock off by default, so --mlock alone locked the mapping
    ({"no_mmap": True}, "none"), ({"mlock": True}, "mmap+mlock"), ({"no_mmap": True, "mlock": True}, "mlock"),
    ({"load_mode": "none", "no_mmap": True}, "none"),
])
def test_load_mode_and_its_older_spellings(args, expected):
    from ggufprof.flags import placement_flags

    assert placement_flags(**args).load_mode == expected


@pytest.mark.parametrize("args,message", [
    ({"load_mode": "mapped"}, "--load-mode: expected one of auto, none, mmap, mlock, mmap+mlock, dio"),
    ({"load_mode": "mmap", "no_mmap": True}, "--load-mode mmap contradicts --no-mmap"),
])
def test_load_mode_refused(args, message):
    from ggufprof.flags import placement_flags

    with pytest.raises(GgufprofError, match=message.replace("+", r"\+")):
        placement_flags(**args)


def test_commands_say_lm_and_no_host_only_when_not_the_default():
    """-lm and --no-host are written with llama.cpp's spellings (llama-bench: --no-host 1), and not at
    all at llama.cpp's defaults (auto, host buffer on), so older answers print as they did."""
    from ggufprof.flags import command_line
    from ggufprof.memory.placement import PlacementFlags
    from ggufprof.memory.settings import KVSettings

    s = KVSettings(ctx_size=4096)
    assert "-lm" not in command_line("llama-server", ["-m", "m.gguf"], s, PlacementFlags())
    p = PlacementFlags(n_gpu_layers=3, load_mode="mlock", no_host=True)
    assert command_line("llama-server", ["-m", "m.gguf"], s, p).endswith("-ngl 3 -lm mlock --no-host --fit off")
    assert command_line("llama-bench", ["-m", "m.gguf"], s, p).endswith("-ngl 3 -lm mlock --no-host 1")
