"""llama.cpp's dry run in its worker (measure/dry_run.py) and the worker started ahead of it
(measure/workers.py prestart/take), on real llama.cpp."""

from __future__ import annotations

import os
from dataclasses import asdict

from ggufprof.measure import workers
from ggufprof.measure.dry_run import DryRun
from ggufprof.measure.workers import PROBE, Worker
from ggufprof.memory.placement import REPACK
from ggufprof.memory.settings import KVSettings
from ggufprof.results.llama_log import parse_log

from .conftest import QUANTIZED_FIXTURES, fixture_path
from .rpc_rig import rpc_rig  # noqa: F401 (the fixture)

SETTINGS = KVSettings(ctx_size=2048, swa_full=False)


def _separately(path, request: dict) -> tuple[dict, dict]:
    """What a plain dry-run load (no override) and the cpu_bufts request answer, each on its own."""
    with Worker(PROBE) as w:
        loaded = w.ask({"op": "load", "model": str(path), "dry_run": True}, timeout=120).result
        ctx = w.ask({"op": "context", "settings": asdict(SETTINGS)}, timeout=120).result
        bufts = w.ask(request, timeout=120).result
    assert "load_error" not in loaded and ctx["ok"]
    return parse_log(ctx["log"]).compute_buffers_mib, bufts


def test_one_load_answers_the_cpu_buffer_types_without_changing_the_placement():
    """With nothing offloaded the dry run loads the model once, every tensor overridden to the CPU:
    the buffer type of each weight (CPU_REPACK for this CPU's repacked Q4_0) is the one the separate
    all-on-CPU load reports, and the compute buffers are those of a load without any override."""
    path = fixture_path(QUANTIZED_FIXTURES[0])
    compute, bufts = _separately(path, {"op": "cpu_bufts", "model": str(path), "repack": True})
    with DryRun(path) as dry:
        folded = dry.cpu_buffer_types()
        assert dry.ask(SETTINGS).log.compute_buffers_mib == compute and compute
        assert dry.loads == 1
    assert folded == bufts
    assert REPACK in folded.values()  # the fixture's point: a value that differs from plain CPU


def test_a_prestarted_worker_is_taken_only_in_the_environment_it_was_started_in(monkeypatch):
    workers.prestart(PROBE)
    (started,) = workers._started[PROBE]
    w = workers.take(PROBE)
    assert w is started and not workers._started[PROBE]
    w.close(kill=True)

    workers.prestart(PROBE)
    (stale,) = workers._started[PROBE]
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", os.fspath(fixture_path("nowhere").parent))  # as --llama-lib sets it
    fresh = workers.take(PROBE)
    try:
        assert fresh is not stale and stale.proc.wait(timeout=10) == -9  # the stale one was killed (SIGKILL)
        assert fresh.env["LLAMA_CPP_LIB_PATH"] == os.fspath(fixture_path("nowhere").parent)
    finally:
        fresh.close(kill=True)


def test_a_placement_loaded_before_is_kept_not_loaded_again(rpc_rig):
    """The probe keeps its dry-run models: going back to a placement it loaded creates the context on
    that model (no load counted), and the context is the same as the first time -- here gemma3-swa's
    compute buffers with 2 and with 4 layers on an rpc-server, which differ."""
    from ggufprof.memory.placement import PlacementFlags

    two, four = (PlacementFlags(n_gpu_layers=n, rpc=rpc_rig.endpoints[:1]) for n in (2, 4))
    with DryRun(fixture_path("gemma3-swa"), placement=two) as dry:
        first = {2: dry.ask(SETTINGS).log.compute_buffers_mib}
        dry.load(four)
        first[4] = dry.ask(SETTINGS).log.compute_buffers_mib
        assert dry.loads == 2
        for again in (two, four, two):
            dry.load(again)
            assert dry.ask(SETTINGS).log.compute_buffers_mib == first[again.n_gpu_layers]
        assert dry.loads == 2
    assert first[2] != first[4]


def test_a_host_holding_only_plain_cpu_weights_needs_no_second_load(rpc_rig):
    """The repacking fixture with every layer on an rpc-server: its own load logs no host buffer but
    the CPU's (the token embeddings, a GET_ROWS weight, are never repacked), so the CPU buffer types
    of that placement are answered without the all-on-CPU load -- and agree with that load on the
    weight the placement keeps on the host. With layers left on the host (CPU_REPACK in the log)
    they are asked; for a search (``whole_map``) at once, of a second worker beside the placement's
    own load, and they are what the same request answers on its own (the repacked Q4_0 weights)."""
    from ggufprof.memory.placement import CPU, PlacementFlags

    path = fixture_path(QUANTIZED_FIXTURES[0])
    every = PlacementFlags(n_gpu_layers=-1, rpc=rpc_rig.endpoints[:1])
    with DryRun(path, placement=every) as dry:
        assert dry.host_buffer_types() == {} and not dry._cpu_bufts  # answered from the load's own log
        asked = dry.cpu_buffer_types()  # the whole map: every weight, as a search needs it
        assert REPACK in asked.values() and asked["token_embd.weight"] == CPU
        assert dry.host_buffer_types() == asked  # asked once, then used
    two = PlacementFlags(n_gpu_layers=2, rpc=rpc_rig.endpoints[:1])
    with DryRun(path, placement=two) as dry:
        assert dry._early is None
        assert REPACK in dry.host_buffer_types().values()  # layers on the host: asked
    with DryRun(path, placement=two, whole_map=True) as dry:
        assert dry._early is not None  # a search's map: asked at once, of a second worker
        early = dry.cpu_buffer_types()
        assert dry._early is None and dry.loads == 1
    _, alone = _separately(path, {"op": "cpu_bufts", "model": str(path), "repack": True,
                                  "placement": two.cpu_buft_key().to_dict()})
    assert early == alone and REPACK in early.values()
