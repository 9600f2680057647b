"""``sweep`` and ``quality`` with every placement flag, on real llama.cpp runs over the two rpc-servers of
tests/rpc_rig.py: the placement travels to the workers, is stored in each record's settings (and its id),
and every record's checks compare the prediction with the real log per device -- each server's KV and
model buffers, the host's CPU_Mapped and CPU_REPACK."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.memory.caches import mib_f64
from ggufprof.memory.placement import CPU, LLM_FFN_EXPS_REGEX, PlacementFlags, ffn_block_regex
from ggufprof.memory.settings import KVSettings
from ggufprof.model.model_info import load_model_info
from ggufprof.results.llama_log import parse_log
from ggufprof.results.quality import QualitySettings
from ggufprof.results.run_settings import PLACEMENT_ID_KEYS, RunSettings, settings_id

from .archs_suite import suite_dir
from .conftest import fixture_path
from .rpc_rig import rpc_rig  # noqa: F401 (the fixture)

runner = CliRunner(mix_stderr=False)
SPEED = ["-d", "0", "-p", "16", "-n", "4", "-r", "1"]  # speed is not what these tests are about


def _records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def _sweep(model, out, *args) -> list[dict]:
    r = runner.invoke(app, ["sweep", str(model), "--out", str(out), *SPEED, *args])
    assert r.exit_code == 0, r.output + r.stderr
    recs = _records(out)
    assert recs and all(d["status"] == "ok" for d in recs), [d.get("reason") for d in recs]
    assert "placement of every configuration (with each -ngl): --rpc " in " ".join(r.stdout.split())
    return recs


def _kv_buffers_as_predicted(d: dict) -> None:
    """Each cache's logged buffer per device is the predicted share of that device (mib as llama.cpp
    prints it), and the per-device totals of the prediction are what the record stores."""
    placement = d["predicted"]["placement"]
    for cache in d["measured"]["kv"]["caches"]:
        predicted = {s["device"]: mib_f64(s["buffer_bytes"]) for s in placement["kv"] if s["cache"] == cache["name"]}
        assert cache["buffers_mib"] == predicted, (d["id"], cache["name"])
    for dev, n in placement["kv_buffer_by_device"].items():
        assert n == sum(s["buffer_bytes"] for s in placement["kv"] if s["device"] == dev)


def test_sweep_over_two_rpc_servers_checks_every_device(rpc_rig, tmp_path):
    """gemma3-swa (8 layers + output) with -ngl all -ts 1,1: five layers on the first server, four on
    the second (load_tensors' upper_bound over 0.5, 1), each server's KV and weights in its own buffer;
    the records say so, and every check per device holds."""
    first, second = rpc_rig.buffer_types()
    recs = _sweep(fixture_path("gemma3-swa"), tmp_path, "-ct", "f16,q8_0", "-c", "1024",
                  "--rpc", ",".join(rpc_rig.endpoints), "-ts", "1,1", "-ngl", "all")
    assert len(recs) == 2
    for d in recs:
        s = d["settings"]
        assert (s["n_gpu_layers"], s["rpc"], s["tensor_split"], s["repack"]) == (-1, list(rpc_rig.endpoints), [1, 1], True)
        assert d["id"].endswith(f",ts=1;1,rpc={';'.join(rpc_rig.endpoints)}") and settings_id(s) == d["id"]
        c = d["check"]
        assert c["kv_exact"] is c["weights_gpu_exact"] is c["weights_repack_exact"] is True, c
        assert c["rss_explained"] is not False and c["total_within_prediction"] is not False, c
        assert d["predicted"]["placement"]["layer_device"] == [first] * 5 + [second] * 4
        assert set(c["weights_by_device"]) == {first, second} and c["weights_gpu_mismatches"] == []
        assert mib_f64(c["weights_host_mapped_predicted"]) == c["weights_host_mapped_logged_mib"]
        _kv_buffers_as_predicted(d)
        # layers 0-4 (sliding window) on the first; 5 (full attention), 6, 7 on the second
        assert {(s["cache"], s["device"], s["layers"]) for s in d["predicted"]["placement"]["kv"]} == {
            ("swa", first, 5), ("swa", second, 2), ("full", second, 1)}
        assert d["predicted"]["placement"]["kv_buffer_by_device"][CPU] == 0


def test_sweep_moe_expert_layers_on_the_host(rpc_rig, tmp_path):
    """A MoE model of llama.cpp's suite with -ncmoe 1 (layer 0's experts on the host) beside -ngl all on
    the servers: the host holds exactly the token embeddings and those experts, and every per-device
    check holds."""
    model = suite_dir() / "qwen3moe-moe.gguf"
    if not model.exists():
        pytest.skip(f"{model} is missing: make archs builds llama.cpp's architecture suite")
    recs = _sweep(model, tmp_path, "-ct", "f16", "-c", "1024", "--rpc", ",".join(rpc_rig.endpoints), "-ts", "1,1",
                  "-ngl", "all", "-ncmoe", "1")
    info = load_model_info(model)
    experts = re.compile(ffn_block_regex(0, LLM_FFN_EXPS_REGEX))
    on_host = sum(t.n_bytes for t in info.tensors if t.name == "token_embd.weight" or experts.search(t.name))
    (d,) = recs
    assert d["settings"]["n_cpu_moe"] == 1 and d["id"].endswith(",ncmoe=1")
    assert d["predicted"]["placement"]["weights"][CPU] == on_host
    c = d["check"]
    assert c["kv_exact"] is c["weights_gpu_exact"] is c["weights_repack_exact"] is True, c
    assert set(c["weights_by_device"]) == set(rpc_rig.buffer_types())
    assert mib_f64(c["weights_host_mapped_predicted"]) == c["weights_host_mapped_logged_mib"]
    _kv_buffers_as_predicted(d)


@pytest.mark.parametrize("load", [["-lm", "none"], ["--no-mmap", "--no-repack"], []], ids=["lm-none", "no-mmap-no-repack", "auto"])
def test_sweep_load_mode_beside_the_servers(rpc_rig, tmp_path, load):
    """The Q4_0 fixture with -ngl 2 -ts 1,1 on the servers: -lm none (or older llama.cpp's --no-mmap)
    travels to the worker's real load (its log names a CPU model buffer, no CPU_Mapped), stands in the
    record's settings and id (lm=none), and the host checks hold: the CPU buffer and CPU_REPACK exactly
    as logged, RSS over the load at least those buffers (anonymous, resident). The default keeps the
    mapping and leaves residency unjudged (file pages)."""
    recs = _sweep(fixture_path("llama-q4_0"), tmp_path, "-ct", "f16", "-c", "512", "--rpc", ",".join(rpc_rig.endpoints),
                  "-ts", "1,1", "-ngl", "2", *load)
    (d,) = recs
    c, mmap = d["check"], not load
    assert d["settings"]["load_mode"] == ("auto" if mmap else "none") and d["id"].endswith("" if mmap else ",lm=none")
    assert settings_id(d["settings"]) == d["id"]
    assert c["kv_exact"] is c["weights_gpu_exact"] is c["weights_repack_exact"] is c["weights_host_exact"] is True, c
    assert c["weights_host_mmap"] is mmap and list(c["weights_host_logged_mib"]) == ["CPU_Mapped" if mmap else "CPU"]
    assert c["weights_resident_explained"] is (None if mmap else True), c
    assert c["total_within_prediction"] is not False, c
    if not mmap:
        assert c["weights_resident_predicted"] == sum(c["weights_host_predicted"].values()) + (
            d["predicted"]["placement"]["host_extra"].get("CPU_REPACK", 0))
        assert ("CPU_REPACK" in d["predicted"]["placement"]["host_extra"]) is ("--no-repack" not in load)


def test_quality_over_rpc_servers(rpc_rig, tmp_path):
    """quality with --rpc -ts -ngl all: the model is loaded on the servers (its log says so) and the
    KLD block is as without placement: f16/f16 against f16/f16 exactly 0."""
    from ggufprof.measure.quality import run_quality

    r = runner.invoke(app, ["quality", str(fixture_path("gemma3-swa")), "-ct", "f16,q8_0", "-c", "128", "--chunks", "2",
                            "--rpc", ",".join(rpc_rig.endpoints), "-ts", "1,1", "-ngl", "all", "--json"])
    assert r.exit_code == 0, r.output + r.stderr
    f16, q8 = json.loads(r.stdout)
    assert (f16["kld_mean"], f16["kld_max"], f16["top1_agreement"]) == (0, 0, 1)
    assert q8["kld_mean"] > 0 and q8["n_scored"] == f16["n_scored"] == 2 * 63
    placement = PlacementFlags(n_gpu_layers=-1, tensor_split=(1.0, 1.0), rpc=rpc_rig.endpoints)
    log = tmp_path / "quality.log"
    run_quality(fixture_path("gemma3-swa"), QualitySettings((("q8_0", "q8_0"),), ctx=128, chunks=2, threads=2,
                                                            placement=placement), 120, log)
    assert set(rpc_rig.buffer_types()) <= set(parse_log(log.read_text()).model_buffers_mib)


def test_sweep_rpc_to_nowhere_is_one_error_before_anything_runs(rpc_rig, tmp_path):
    r = runner.invoke(app, ["sweep", str(fixture_path("gemma3-swa")), "--out", str(tmp_path / "out"), *SPEED,
                            "-ct", "f16", "-c", "512", "--rpc", "127.0.0.1:9", "-ngl", "all"])
    assert r.exit_code == 2 and "no rpc-server answers there" in r.stderr, r.output + r.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_default_placement_keeps_the_old_id():
    """Records written before the placement flags were settings ran at llama.cpp's default placement:
    their id (and settings_id, which compare matches on) must be today's for that placement."""
    old = ("ctk=q8_0,ctv=q8_0,c=2048,np=1,kvu=0,swa_full=0,fa=auto,b=2048,ub=512,t=2,ngl=0,nkvo=0,pp=512,tg=128,"
           "d=0,r=3")
    rs = RunSettings(KVSettings(ctx_size=2048, cache_type_k="q8_0", cache_type_v="q8_0", swa_full=False), 2)
    assert rs.id == old
    v1 = {k: v for k, v in rs.to_dict().items() if k not in PlacementFlags.__dataclass_fields__}
    assert settings_id(v1) == old and RunSettings.from_dict(v1) == rs
    moved = dataclasses.replace(rs, placement=PlacementFlags(n_cpu_moe=1))
    assert settings_id(moved.to_dict()) == old + ",ncmoe=1"


def test_every_placement_flag_is_in_the_id():
    """A placement flag left out of the id would make two placements one configuration in compare."""
    assert {name for name, _ in PLACEMENT_ID_KEYS} | {"n_gpu_layers", "repack"} == set(PlacementFlags.__dataclass_fields__)
    rs = RunSettings(KVSettings(), 2, placement=PlacementFlags(
        n_gpu_layers=3, split_mode="none", tensor_split=(3.0, 1.5), main_gpu=1, devices=("RPC0", "RPC1"),
        rpc=("h:1", "h:2"), overrides=(("exps", "CPU"), ("attn", "RPC0[h:1]")), cpu_moe=True, n_cpu_moe=2,
        n_cpu_ffn=1, repack=False, load_mode="mmap+mlock", no_host=True))
    assert rs.id.endswith(",ngl=3,nkvo=0,pp=512,tg=128,d=0,r=3,repack=0,sm=none,ts=3;1.5,mg=1,dev=RPC0;RPC1,"
                          "rpc=h:1;h:2,ot=exps=CPU;attn=RPC0[h:1],cmoe=1,ncmoe=2,ncffn=1,lm=mmap+mlock,nohost=1")
    assert RunSettings.from_dict(json.loads(json.dumps(rs.to_dict()))) == rs


def test_llama_bench_lines_carry_the_placement():
    """export writes the placement in llama-bench's own fields (its test::get_values spellings), and an
    imported llama-bench line is read back at that placement, not at the default."""
    from ggufprof.results.llama_bench_io import _placement_of, bench_placement

    p = PlacementFlags(n_gpu_layers=-1, split_mode="none", tensor_split=(3.0, 1.0, 0.0), main_gpu=1,
                       devices=("RPC0", "RPC1"), overrides=(("exps", "CPU"),), n_cpu_moe=2, repack=False,
                       load_mode="none", no_host=True)
    b = bench_placement(p)
    assert (b["tensor_split"], b["devices"], b["tensor_buft_overrides"], b["n_cpu_moe"], b["split_mode"],
            b["main_gpu"], b["repack"], b["load_mode"], b["no_host"]) == (
        "3.00/1.00", "RPC0/RPC1", "exps=CPU", 2, "none", 1, False, "none", True)
    assert _placement_of(b) == dataclasses.replace(p, tensor_split=(3.0, 1.0))
    default = bench_placement(PlacementFlags())
    assert (default["tensor_split"], default["devices"], default["tensor_buft_overrides"]) == ("0.00", "auto", "none")
    assert _placement_of(default) == PlacementFlags()
    # llama-bench has no -cmoe: it is the -ot pattern it stands for
    assert bench_placement(PlacementFlags(cpu_moe=True))["tensor_buft_overrides"] == f"{LLM_FFN_EXPS_REGEX}=CPU"
