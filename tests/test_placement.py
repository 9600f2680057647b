"""Which device holds each layer (llama.cpp's llama_model::load_tensors), per-device KV and weights.

The layer table below is derived by hand from load_tensors in src/llama-model.cpp:
``i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0)``; layer il (n_layer = the output layer) is on
the GPU when ``il >= i_gpu_start`` and ``il - i_gpu_start < min(n_gpu_layers, n_layer + 1)``.

The GPU predictions are checked against real llama.cpp logs: the H100 run committed under
benchmarks/h100 (39 configurations, KV buffer lines per device, CUDA0 model buffer, VRAM), whose
2.2 GB model is rebuilt here from its shape alone (header facts, no weights needed).
"""

import shutil

import pytest

from ggufprof.errors import GgufprofError

from ggufprof.measure.grid import GridSpec
from ggufprof.model.gguf_reader import GgufFile, LargeArray, TensorInfo
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.predict import predict
from ggufprof.measure.sweep import Sweep
from ggufprof.model.model_info import load_model_info, model_info_from_gguf
from ggufprof.memory.placement import (AMX, CPU, REPACK, OffloadDevice, PlacementFlags, alloc_size, amx_alloc_size,
                                       gpu_layers, is_host_buffer, layer_devices, layers_per_device, place)

GPU = "CUDA0"  # the GPU as llama.cpp names it on the machine these records come from
from ggufprof.model import ggml_types

from .conftest import ROOT, fixture_path


@pytest.mark.parametrize("n_layer,ngl,on_gpu_layers,output", [
    (4, 0, [], False),
    (4, 1, [], True),            # the output layer is the first one offloaded
    (4, 2, [3], True),
    (4, 4, [1, 2, 3], True),
    (4, 5, [0, 1, 2, 3], True),  # n_layer + 1: everything
    (4, 99, [0, 1, 2, 3], True),
    (4, -1, [0, 1, 2, 3], True),  # llama_model_default_params: -1 = all
    (22, 10, list(range(13, 22)), True),  # 9 repeating layers + output, as seen on the GPU machine
    (22, 12, list(range(11, 22)), True),
])
def test_layer_assignment(n_layer, ngl, on_gpu_layers, output):
    flags = gpu_layers(n_layer, ngl)
    assert [il for il in range(n_layer) if flags[il]] == on_gpu_layers
    assert flags[n_layer] is output


def test_integer_tensor_split_gives_each_device_exactly_its_layers():
    """-ts as layer counts (what fit writes, as common/fit.cpp's set_ngl_tensor_split_tbo does): load_tensors'
    single-precision split points give each device exactly its count, a contiguous slice in device
    order with the output layer on the last device that holds layers, for every split of up to 120
    layers over two devices and a sample over three."""
    devs = [OffloadDevice(f"RPC{i}") for i in range(3)]
    for n_layer in (1, 2, 7, 24, 61, 119):
        splits = [(a, b) for a in range(n_layer + 2) for b in range(n_layer + 2 - a)]
        splits += [(a, b, c) for a, b, c in ((1, 1, 1), (0, 2, n_layer - 1), (n_layer // 3, n_layer // 3, 2),
                                             (3, 0, n_layer - 2)) if min(a, b, c) >= 0 and a + b + c <= n_layer + 1]
        for counts in splits:
            if not sum(counts):
                continue
            flags = PlacementFlags(n_gpu_layers=sum(counts), tensor_split=tuple(float(c) for c in counts))
            assert layers_per_device(n_layer, flags, devs[:len(counts)]) == counts, (n_layer, counts)
            per_layer = [d for d in layer_devices(n_layer, flags, devs[:len(counts)]) if d is not None]
            assert per_layer == sorted(per_layer, key=devs.index)  # contiguous, in device order


def test_no_gpu_means_all_on_cpu():
    assert gpu_layers(4, 99, has_gpu=False) == [False] * 5


@pytest.mark.parametrize("ngl", [0, 2, 3, 5])
def test_kv_split_on_fixture(ngl):
    m = load_model_info(fixture_path("gemma3-swa"))  # 8 layers: SWA 0-4, 6-7; full 5
    pred = predict(m, KVSettings(ctx_size=2048, swa_full=False))
    p = place(m, pred, ngl, gpu=GPU)
    on = [il for il in range(8) if p.on_gpu[il]]
    full_gpu = sum(1 for il in on if not m.swa_layers[il])
    swa_gpu = sum(1 for il in on if m.swa_layers[il])
    by = {(d.cache, d.device): d.layers for d in p.kv}
    assert by.get(("full", GPU), 0) == full_gpu and by.get(("swa", GPU), 0) == swa_gpu
    assert by.get(("full", CPU), 0) + full_gpu == 1 and by.get(("swa", CPU), 0) + swa_gpu == 7
    assert p.kv_bytes(CPU) + p.kv_bytes(GPU) == pred.kv_bytes


def test_no_kv_offload_keeps_all_kv_on_host():
    m = load_model_info(fixture_path("llama-gqa"))
    pred = predict(m, KVSettings(ctx_size=4096))
    p = place(m, pred, 99, offload_kqv=False, gpu=GPU)
    assert p.kv_bytes(GPU) == 0 and p.kv_bytes(CPU) == pred.kv_bytes
    assert p.weights.get(GPU, 0) > 0  # the weights still go to the GPU


def test_cuda_pads_quantized_rows_to_512():
    q8 = ggml_types.kv_cache_type("q8_0")
    # 256 values per row: +256 values of q8_0 (272 bytes) once per tensor, then 128-byte alignment
    assert alloc_size(q8, (256, 4096, 1), GPU) == 1114112 + 384
    assert alloc_size(q8, (256, 4096, 1), CPU) == 1114112
    assert alloc_size(ggml_types.kv_cache_type("f16"), (256, 4096, 1), GPU) == 2097152


def llama_1b_info(matrix_type: int = 1):
    """ModelInfo of benchmarks/h100's model (scripts/make_fixtures.py --llama-1b) from its shape;
    ``matrix_type``: the layers' matrices' ggml type (f16 there)."""
    f16, f32 = matrix_type, 0
    n_layer, n_embd, n_ff, n_vocab, kv_width = 22, 2048, 5632, 32000, 256
    shapes = [("token_embd.weight", (n_embd, n_vocab), 1), ("output_norm.weight", (n_embd,), f32),
              ("output.weight", (n_embd, n_vocab), 1)]
    for i in range(n_layer):
        p = f"blk.{i}."
        shapes += [(p + "attn_norm.weight", (n_embd,), f32), (p + "attn_q.weight", (n_embd, n_embd), f16),
                   (p + "attn_k.weight", (n_embd, kv_width), f16), (p + "attn_v.weight", (n_embd, kv_width), f16),
                   (p + "attn_output.weight", (n_embd, n_embd), f16), (p + "ffn_norm.weight", (n_embd,), f32),
                   (p + "ffn_gate.weight", (n_embd, n_ff), f16), (p + "ffn_up.weight", (n_embd, n_ff), f16),
                   (p + "ffn_down.weight", (n_ff, n_embd), f16)]
    tensors, off = [], 0
    for name, shape, t in shapes:
        nb = ggml_types.nbytes(ggml_types.BY_ID[t], shape)
        tensors.append(TensorInfo(name, shape, t, nb, off))
        off += nb
    kv = {"general.architecture": "llama", "general.name": "random llama 1.1B shape", "llama.block_count": n_layer,
          "llama.context_length": 131072, "llama.embedding_length": n_embd, "llama.feed_forward_length": n_ff,
          "llama.attention.head_count": 32, "llama.attention.head_count_kv": 4,
          "tokenizer.ggml.tokens": LargeArray("str", n_vocab)}
    return model_info_from_gguf(GgufFile(ROOT / "llama-1b.gguf", 3, kv, tuple(tensors), 0, off))


def test_h100_results_recheck_exactly(tmp_path):
    """Recompute every committed H100 record's prediction and checks from its stored llama.cpp log."""
    src = ROOT / "benchmarks" / "h100"
    out = tmp_path / "h100"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("report*", "*.png"))
    info = llama_1b_info()
    assert info.n_params == 1_100_048_384
    spec = GridSpec([("f16", "f16")], [4096], [True], [1], [False], ["on"], [0], threads=16)
    recs = Sweep(info, spec, out).recheck()
    assert len(recs) == 39 and all(r.status == "ok" for r in recs)
    for r in recs:
        c = r.check
        assert c["kv_exact"], (r.id, c["kv_mismatches"])
        assert c["weights_gpu_exact"], (r.id, c["weights_gpu_predicted"], c["weights_gpu_logged_mib"])
        assert c["vram_explained"], (r.id, c["vram_error"])
        devices = {d for cache in r.measured["kv"]["caches"] for d in cache["buffers_mib"]}
        expected = {GPU} if r.settings["offload_kqv"] and r.settings["n_gpu_layers"] == 23 else (
            {CPU} if not r.settings["offload_kqv"] else {CPU, GPU})
        assert devices == expected, r.id


def test_gpu_host_buffer_type_per_load_mode():
    """With a CUDA device, make_cpu_buft_list (src/llama-model.cpp) puts CUDA_Host before CPU_REPACK, so
    select_weight_buft gives the host weights CUDA_Host wherever CUDA supports their op, and the probe
    (measure/dry_run.py cpu_buffer_types, a dry run that never maps) says so. From that answer: -lm none
    allocates a real CUDA_Host buffer (each tensor's ggml_nbytes aligned to 32, the CPU's alignment that
    CUDA_Host takes) and nothing is repacked; with mmap create_tensor swaps CUDA_Host for the CPU's
    buffer type ("avoid using a host buffer when using mmap"), so the weights are the mapped range.
    (No GPU here: the real CUDA load is benchmarks/load-mode/cuda_check.py.)"""
    m = load_model_info(fixture_path("llama-q4_0"))
    pred = predict(m, KVSettings(ctx_size=1024))
    cuda = OffloadDevice("CUDA0", "CUDA0", host_buffer_type="CUDA_Host", host_alignment=32)
    bufts = {t.name: "CUDA_Host" for t in m.tensors}  # as a CUDA build answers for every type CUDA computes
    none = place(m, pred, cpu_bufts=bufts, flags=PlacementFlags(load_mode="none"), devices=[cuda])
    assert none.host_model_buffers == {"CUDA_Host": sum(-(-t.n_bytes // 32) * 32 for t in m.tensors)}
    assert not none.mmap and none.host_weights == none.host_buffers["CUDA_Host"] and not none.host_extra
    mapped = place(m, pred, cpu_bufts=bufts, flags=PlacementFlags(), devices=[cuda])
    assert mapped.mmap and set(mapped.host_model_buffers) == {"CPU_Mapped"} and not mapped.host_buffers
    # an iGPU without mmap support (caps.mmap_support false): auto loads as none (load_tensors)
    igpu = OffloadDevice("CUDA0", "CUDA0", type="igpu", host_buffer_type="CUDA_Host", mmap_support=False)
    assert not place(m, pred, cpu_bufts=bufts, flags=PlacementFlags(), devices=[igpu]).mmap


@pytest.mark.parametrize("name,ne,expected", [
    # ggml-cpu/amx/mmq.cpp get_row_size: ne[1] rows of ne[0]/block blocks, each sizeof(block) + what it adds
    ("q4_0", (4096, 11008), 11008 * 128 * 18),        # no compensation: as ggml_nbytes
    ("q4_1", (4096, 11008), 11008 * 128 * 20),
    ("q8_0", (4096, 11008), 11008 * 128 * (34 + 4)),  # s8s8 compensation: one int32 per block
    ("q4_K", (2048, 5632), 5632 * 8 * (144 + 4)),     # the unpacked scales and mins
    ("q5_K", (2048, 5632), 5632 * 8 * (176 + 4)),
    ("q6_K", (2048, 5632), 5632 * 8 * 210),
    ("iq4_xs", (2048, 5632), 5632 * 8 * (136 + 2)),
    ("f16", (2048, 5632), 2048 * 5632 * 2),            # no AMX kernel: not packed (ggml_nbytes)
])
def test_amx_alloc_size(name, ne, expected):
    assert amx_alloc_size(ggml_types.BY_NAME[name.lower()], ne) == expected


@pytest.mark.parametrize("type_name", ["q8_0", "q4_K"])
def test_weights_in_the_amx_buffer_are_host_memory_at_their_packed_size(type_name):
    """On a CPU with AMX, llama.cpp puts the layers' 2-D MUL_MAT weights of these types in the AMX
    buffer (first of ggml_backend_cpu_get_extra_buffer_types) on top of the mapped file: the AMX
    buffer is each at its packed size padded to 32; CPU_REPACK for the same tensors keeps ggml_nbytes."""
    m = llama_1b_info(ggml_types.BY_NAME[type_name.lower()].id)
    pred = predict(m, KVSettings(ctx_size=1024))
    packed = [t for t in m.tensors if t.name.startswith("blk.") and len(t.shape) == 2 and t.shape[1] > 1]
    amx = place(m, pred, cpu_bufts={t.name: AMX for t in packed}, flags=PlacementFlags())
    want = sum(-(-amx_alloc_size(ggml_types.BY_ID[t.type_id], t.shape) // 32) * 32 for t in packed)
    assert amx.host_extra == {AMX: want} and want > sum(t.n_bytes for t in packed)  # larger than the file's
    assert amx.mmap and amx.host_model_buffers[AMX] == want and is_host_buffer(AMX)
    repack = place(m, pred, cpu_bufts={t.name: REPACK for t in packed}, flags=PlacementFlags())
    assert repack.host_extra == {REPACK: sum(-(-t.n_bytes // 32) * 32 for t in packed)}
    assert repack.host_mapped == amx.host_mapped  # the mapping is the same file range either way


def test_an_extra_buffer_type_it_does_not_size_is_refused():
    m = load_model_info(fixture_path("llama-q4_0"))
    pred = predict(m, KVSettings(ctx_size=1024))
    with pytest.raises(GgufprofError, match="CPU_KLEIDIAI buffer.*--no-repack"):
        place(m, pred, cpu_bufts={m.tensors[1].name: "CPU_KLEIDIAI"}, flags=PlacementFlags())


def test_an_override_is_searched_only_where_its_literal_head_is():
    """place() looks for each -ot pattern's literal head before searching it (the -ncmoe patterns,
    one per layer, against every tensor): the head is text every match holds, so no match is lost --
    checked against re.search on random patterns and names -- and -ncmoe's have a useful one."""
    import random
    import re
    import warnings

    from ggufprof.memory.placement import LAYER_FRACTION_ATTN, LLM_FFN_EXPS_REGEX, _literal_head, ffn_block_regex

    assert _literal_head(ffn_block_regex(12, LLM_FFN_EXPS_REGEX)) == "blk.12.ffn_"
    assert _literal_head(ffn_block_regex(3, LAYER_FRACTION_ATTN)) == "blk.3.ffn_"
    assert [_literal_head(p) for p in ("exps=CPU", "a|b", r"a[(]b|c", r"ab*c", r"\d+x", "(?i)blk")] == \
        ["exps=CPU", "", "", "a", "", ""]
    rng = random.Random(7)
    names = ["".join(rng.choice("abc.|()[]") for _ in range(rng.randint(0, 8))) for _ in range(200)]
    matched = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": random patterns
        for _ in range(3000):
            pattern = "".join(rng.choice(r"ab.|()[]*?\^c") for _ in range(rng.randint(1, 7)))
            try:
                rx = re.compile(pattern)
            except re.error:
                continue
            head = _literal_head(pattern)
            for name in names:
                if rx.search(name):
                    matched += 1
                    assert head in name, (pattern, head, name)
    assert matched > 10_000
