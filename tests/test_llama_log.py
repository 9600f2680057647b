"""Parsing llama.cpp's allocation log lines (in the exact format of its log for the fixtures)."""

import pytest

from ggufprof.measure.llama_ctx import LlamaModel
from ggufprof.memory.settings import KVSettings
from ggufprof.results.llama_log import CATALOGUE, _line, memory_lines, parse_log
from .conftest import fixture_path

ISWA_LOG = """\
load_tensors:   CPU_Mapped model buffer size =     0.82 MiB
llama_context: n_ctx                 = 1536
llama_context: n_ctx_seq             = 512
llama_kv_cache_iswa: creating non-SWA KV cache, size = 512 cells
llama_kv_cache:        CPU KV buffer size =     0.38 MiB
llama_kv_cache: size =    0.38 MiB (   512 cells,   1 layers,  3/3 seqs), K (f16):    0.19 MiB, V (f16):    0.19 MiB
llama_kv_cache_iswa: creating     SWA KV cache, size = 512 cells
llama_kv_cache:        CPU KV buffer size =     2.62 MiB
llama_kv_cache: size =    2.62 MiB (   512 cells,   7 layers,  3/3 seqs), K (q8_0):    1.31 MiB, V (f16):    1.31 MiB
resolve_fused_ops: Flash Attention enabled
sched_reserve:        CPU compute buffer size =     1.27 MiB
"""


def test_iswa_log():
    log = parse_log(ISWA_LOG)
    assert [c.name for c in log.caches] == ["full", "swa"]
    full, swa = log.caches
    assert (full.cells, full.layers, full.seqs, full.streams) == (512, 1, 3, 3)
    assert (full.k_mib, full.v_mib, full.total_mib, full.buffers_mib) == ("0.19", "0.19", "0.38", {"CPU": "0.38"})
    assert (swa.type_k, swa.type_v, swa.layers, swa.buffers_mib["CPU"]) == ("q8_0", "f16", 7, "2.62")
    assert log.compute_buffers_mib == {"CPU": "1.27"}
    assert log.model_buffers_mib == {"CPU_Mapped": "0.82"}
    assert log.flash_attn_resolved is True
    assert (log.n_ctx, log.n_ctx_seq) == (1536, 512)


def test_plain_cache_on_two_devices():
    log = parse_log(
        "llama_kv_cache:      CUDA0 KV buffer size =   396.00 MiB\n"
        "llama_kv_cache:        CPU KV buffer size =   572.00 MiB\n"
        "llama_kv_cache: size =  968.00 MiB ( 32768 cells,  22 layers,  1/1 seqs), K (f16):  484.00 MiB, V (f16):  484.00 MiB\n"
        "resolve_fused_ops: Flash Attention not supported, set to disabled\n"
    )
    (c,) = log.caches
    assert c.name == "kv" and c.buffers_mib == {"CUDA0": "396.00", "CPU": "572.00"}
    assert c.total_mib == "968.00" and log.flash_attn_resolved is False


def test_nothing_to_parse():
    log = parse_log("llama_model_loader: loaded meta data\n")
    assert log.caches == [] and log.flash_attn_resolved is None


def test_flash_attn_forced_on_by_quantized_v():
    log = parse_log("llama_init_from_model: enabling flash_attn since it is required for quantized V cache\n"
                    "llama_context: flash_attn            = enabled\n")
    assert log.flash_attn_resolved is True


def test_flash_attn_auto_then_resolved():
    log = parse_log("llama_context: flash_attn            = auto\n"
                    "resolve_fused_ops: Flash Attention not supported, set to disabled\n")
    assert log.flash_attn_resolved is False


def test_a_needle_outside_its_pattern_is_refused():
    with pytest.raises(ValueError, match="not a literal part"):
        _line("x", r"(\S+) compute buffer size", "what it measures", "compute buffers")


@pytest.mark.parametrize("name", ["gemma3-swa", "llama-q4_0"])
def test_needles_pass_over_no_line_the_catalogue_reads(name):
    """A real load (every weight overridden to the CPU: one debug line per tensor) and a real
    context: every line a pattern matches contains that entry's needle, so the needle filter keeps
    all of them, and what it keeps parses as every line does."""
    with LlamaModel(fixture_path(name), dry_run=True, all_on_cpu=True) as lm:
        ctx = lm.create_context(KVSettings(ctx_size=512, parallel=2))
        lm.free_context(ctx)
    for text in (lm.load_log_text, ctx.log_text):
        matched = [(e, ln) for ln in text.splitlines() for e in CATALOGUE if e.pattern.search(ln)]
        assert matched and all(e.needle in ln for e, ln in matched)
        assert memory_lines(text).splitlines() == [ln for ln in text.splitlines()
                                                   if any(e.pattern.search(ln) for e in CATALOGUE)]
        assert parse_log(text) == parse_log(memory_lines(text))
    assert parse_log(lm.load_log_text).tensor_bufts  # the per-tensor lines were kept
    assert parse_log(ctx.log_text).compute_buffers_mib
