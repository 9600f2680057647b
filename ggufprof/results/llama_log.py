"""Parse what llama.cpp logs while it loads a model and creates a context.

llama.cpp reports every allocation it makes in its log, with two decimals of MiB:

    llama_kv_cache_iswa: creating non-SWA KV cache, size = 512 cells
    llama_kv_cache:        CPU KV buffer size =     0.75 MiB
    llama_kv_cache: size =    0.75 MiB (   512 cells,   4 layers,  3/3 seqs), K (f16):    0.38 MiB, V (f16):    0.38 MiB
    llama_memory_recurrent:        CPU RS buffer size =     0.06 MiB
    llama_memory_recurrent: size =    0.06 MiB (     1 cells,   2 layers,  1 seqs  0 rs_seq), R (f32): ...
    sched_reserve:        CPU compute buffer size =     1.27 MiB
    load_tensors:   CPU_Mapped model buffer size =     0.95 MiB
    resolve_fused_ops: Flash Attention enabled

Pure text processing, no llama_cpp import, so it is tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ..memory.caches import CONTEXT_LOG_KINDS, LOG_KV, LOG_RS, LOG_STATE
from ..memory.placement import is_host_buffer

@dataclass(frozen=True)
class LogLine:
    """One kind of line llama.cpp logs about memory: where it comes from and what it measures.
    ``needle``: a literal part of ``pattern`` that every line it matches contains (its first words
    outside any group), so that the thousands of debug lines a load and a context log (one per
    tensor, one per graph input) are passed over by one substring search instead of every pattern."""

    name: str
    pattern: re.Pattern
    measures: str
    needle: str


def _line(name: str, pattern: str, measures: str, needle: str) -> LogLine:
    if needle not in pattern:
        raise ValueError(f"{name}: the needle {needle!r} is not a literal part of {pattern!r}")
    return LogLine(name, re.compile(pattern), measures, needle)


# The catalogue: every line of llama.cpp's log that ggufprof reads. The parser below, the probe
# worker (which keeps only these lines of a context's log) and the checks all use it.
CREATING = _line("creating", r"llama_\w+: creating\s+(non-SWA|SWA|DSA|main|indexer) KV cache",
                 "a composite memory (iSWA, DSA, MSA, hybrid_idx) announces its next cache's label", "KV cache")
CREATING_DSV4 = _line("creating_dsv4", r"creating DSV4", "DeepSeek-V4's compressed caches announced (read by people)",
                      "creating DSV4")
KV_BUF = _line("kv_buffer", r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB",
               "one KV cache's buffer on one device (llama_kv_cache::llama_kv_cache)", "KV buffer size =")
KV_SIZE = _line("kv_size", r"llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+)/(\d+) seqs\), "
                r"K \((\w+)\):\s+([\d.]+) MiB, V \((\w+)\):\s+([\d.]+) MiB",
                "one KV cache's cells, layers, sequences/streams, K and V types and sizes", "llama_kv_cache: size =")
STATE_BUF = _line("state_buffer", r"llama_dsv4_comp_state:\s+(\S+) DSV4 (\w+) state buffer size =\s+([\d.]+) MiB",
                  "a DSV4 compressor state's buffer on one device", "state buffer size =")
STATE_SIZE = _line("state_size", r"llama_dsv4_comp_state: (\w+) ratio = \d+, state = (\d+) x \d+, streams = (\d+), "
                   r"rs_seq = \d+, layers = (\d+), size =\s+([\d.]+) MiB", "a DSV4 compressor state's shape and size",
                   "llama_dsv4_comp_state: ")
RS_BUF = _line("rs_buffer", r"llama_memory_recurrent:\s+(\S+) RS buffer size =\s+([\d.]+) MiB",
               "recurrent state's buffer on one device (llama_memory_recurrent)", "RS buffer size =")
RS_SIZE = _line("rs_size", r"llama_memory_recurrent: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+) seqs\s+(\d+) rs_seq\), "
                r"R \((\w+)\):\s+([\d.]+) MiB, S \((\w+)\):\s+([\d.]+) MiB, P \((\w+)\):\s+([\d.]+) MiB",
                "recurrent state's cells, layers, sequences and R/S/P sizes", "llama_memory_recurrent: size =")
COMPUTE = _line("compute_buffer", r"(\S+) compute buffer size =\s+([\d.]+) MiB",
                "a compute buffer per buffer type (sched_reserve)", "compute buffer size =")
OUTPUT = _line("output_buffer", r"(\S+)\s+output buffer size =\s+([\d.]+) MiB", "the output (logits) buffer",
               "output buffer size =")
MODEL = _line("model_buffer", r"(\S+) model buffer size =\s+([\d.]+) MiB",
              "weights per buffer type (load_tensors; one line per shard of a split model)", "model buffer size =")
FA = _line("flash_attn_resolved", r"Flash Attention (enabled|not supported, set to disabled)",
           "flash attention 'auto' as resolved by probing the backend", "Flash Attention ")
FA_PARAM = _line("flash_attn_param", r"llama_context: flash_attn\s+= (enabled|disabled|auto)",
                 "flash attention as the context was asked (auto may be forced on by a quantized V)",
                 "llama_context: flash_attn")
TENSOR_BUFT = _line("tensor_buft", r"tensor (\S+) \(\d+ MiB \w+\) buffer type overridden to (\S+)",
                    "the buffer type of one weight under a tensor override (llama-model-loader.cpp, debug level)",
                    "buffer type overridden to ")
N_CTX = _line("n_ctx", r"llama_context: n_ctx\s+= (\d+)", "llama_n_ctx", "llama_context: n_ctx")
N_CTX_SEQ = _line("n_ctx_seq", r"llama_context: n_ctx_seq\s+= (\d+)", "llama_n_ctx_seq", "llama_context: n_ctx_seq")
CATALOGUE = (CREATING, CREATING_DSV4, KV_BUF, KV_SIZE, STATE_BUF, STATE_SIZE, RS_BUF, RS_SIZE, COMPUTE, OUTPUT, MODEL,
             FA, FA_PARAM, N_CTX, N_CTX_SEQ, TENSOR_BUFT)
_LABELS = {"non-SWA": "full", "SWA": "swa", "DSA": "full", "main": "kv", "indexer": "indexer"}
_NEEDLES = re.compile("|".join(re.escape(e.needle) for e in CATALOGUE))


def _candidates(text: str) -> list[str]:
    """The lines that contain some catalogue entry's needle: a superset of those it describes, and
    few: on SmolLM2 283 of a load's and a context's 2535 lines (the per-tensor lines of the load
    with every weight on the CPU among them), where regexes over every line took 80 ms."""
    return [ln for ln in text.splitlines() if _NEEDLES.search(ln)]


def memory_lines(text: str) -> str:
    """The lines of a log that the catalogue describes (what a probe keeps of a context's log)."""
    return "\n".join(ln for ln in _candidates(text) if any(e.pattern.search(ln) for e in CATALOGUE))


@dataclass
class LoggedCache:
    """One KV cache or recurrent state as llama.cpp described it; MiB values are the printed strings.

    For recurrent state (``kind`` LOG_RS) K and V stand for R and S, and ``p_mib`` is the PLE row."""

    name: str  # the announced label: "kv", "full", "swa", "indexer"; "recurrent"; csa/hca/lid state
    kind: str = LOG_KV  # LOG_KV (llama_kv_cache), LOG_RS (llama_memory_recurrent), LOG_STATE (DSV4 compressor)
    cells: int = 0
    layers: int = 0
    seqs: int = 0
    streams: int = 0
    type_k: str = ""
    type_v: str = ""
    total_mib: str = ""
    k_mib: str = ""
    v_mib: str = ""
    p_mib: str = ""
    buffers_mib: dict[str, str] = field(default_factory=dict)  # device -> "0.75"


@dataclass
class LlamaLog:
    caches: list[LoggedCache] = field(default_factory=list)
    compute_buffers_mib: dict[str, str] = field(default_factory=dict)
    model_buffers_mib: dict[str, str] = field(default_factory=dict)
    output_buffers_mib: dict[str, str] = field(default_factory=dict)
    tensor_bufts: dict[str, str] = field(default_factory=dict)  # weight -> buffer type, under an override
    flash_attn_resolved: bool | None = None  # whether flash attention ended up on; None if not logged
    n_ctx: int | None = None
    n_ctx_seq: int | None = None

    @property
    def gpu_devices(self) -> list[str]:
        """The devices other than host memory that hold a buffer in this log: non-empty when the run
        had a GPU backend (its compute buffers appear even with no layer offloaded)."""
        names = {d for c in self.caches for d in c.buffers_mib} | set(self.model_buffers_mib) | set(self.compute_buffers_mib)
        return sorted(n for n in names if not is_host_buffer(n))


def parse_log(text: str) -> LlamaLog:
    """Every cache in the order llama.cpp created it: its buffer lines come first, then its size line."""
    out = LlamaLog()
    pending: str | None = None  # label announced for the next cache
    current: LoggedCache | None = None

    def cache(kind: str, name: str | None = None) -> LoggedCache:
        nonlocal current, pending
        if current is None or current.total_mib or current.kind != kind:  # a finished cache: open a new one
            current = LoggedCache(name or ("recurrent" if kind == LOG_RS else pending or "kv"), kind)
            out.caches.append(current)
            pending = None
        return current

    for line in _candidates(text):
        if m := CREATING.pattern.search(line):
            pending = _LABELS[m.group(1)]
        elif m := KV_BUF.pattern.search(line) or RS_BUF.pattern.search(line):
            cache(LOG_RS if m.re is RS_BUF.pattern else LOG_KV).buffers_mib[m.group(1)] = m.group(2)
        elif m := KV_SIZE.pattern.search(line):
            c = cache(LOG_KV)
            c.total_mib = m.group(1)
            c.cells, c.layers = int(m.group(2)), int(m.group(3))
            c.seqs, c.streams = int(m.group(4)), int(m.group(5))
            c.type_k, c.k_mib, c.type_v, c.v_mib = m.group(6, 7, 8, 9)
        elif m := STATE_BUF.pattern.search(line):
            cache(LOG_STATE, m.group(2)).buffers_mib[m.group(1)] = m.group(3)
        elif m := STATE_SIZE.pattern.search(line):
            c = cache(LOG_STATE, m.group(1))
            c.cells, c.streams, c.seqs, c.layers, c.total_mib = int(m.group(2)), int(m.group(3)), int(m.group(3)), \
                int(m.group(4)), m.group(5)
        elif m := RS_SIZE.pattern.search(line):
            c = cache(LOG_RS)
            c.total_mib = m.group(1)
            c.cells, c.layers, c.seqs, c.streams = int(m.group(2)), int(m.group(3)), int(m.group(4)), 1
            c.type_k, c.k_mib, c.type_v, c.v_mib, c.p_mib = m.group(6, 7, 8, 9, 11)
        elif m := TENSOR_BUFT.pattern.search(line):
            out.tensor_bufts[m.group(1)] = m.group(2)
        elif m := OUTPUT.pattern.search(line):
            out.output_buffers_mib[m.group(1)] = m.group(2)
        elif m := COMPUTE.pattern.search(line):
            out.compute_buffers_mib[m.group(1)] = m.group(2)
        elif m := MODEL.pattern.search(line):  # one line per shard of a split model: summed per buffer type
            prev = out.model_buffers_mib.get(m.group(1))
            out.model_buffers_mib[m.group(1)] = m.group(2) if prev is None else str(Decimal(prev) + Decimal(m.group(2)))
        elif m := FA.pattern.search(line):  # "auto" resolved by probing the backend
            out.flash_attn_resolved = m.group(1) == "enabled"
        elif m := FA_PARAM.pattern.search(line):  # on, off, or auto already forced on (quantized V)
            out.flash_attn_resolved = {"enabled": True, "disabled": False}.get(m.group(1), out.flash_attn_resolved)
        elif m := N_CTX.pattern.search(line):
            out.n_ctx = int(m.group(1))
        elif m := N_CTX_SEQ.pattern.search(line):
            out.n_ctx_seq = int(m.group(1))
    return out


def mib_bytes(mib: str | Decimal) -> int:
    """Bytes of a MiB figure as llama.cpp prints it (two decimals): the one conversion of logged
    sizes, exact in Decimal, rounded to a byte (within 0.005 MiB of what was allocated)."""
    return int((Decimal(str(mib)) * 2**20).to_integral_value())


def logged_mib(caches: list[dict] | None, grows_with_context: bool = True) -> Decimal | None:
    """The one sum of logged memory: the ``total_mib`` llama.cpp printed for the caches that grow with
    the context (a prediction's ``kv_bytes``), or with ``grows_with_context=False`` for the fixed-size
    state (its ``recurrent_bytes``), as printed; None when there is none or a value is not a number."""
    mine = [c for c in caches or [] if isinstance(c, dict)
            and (c.get("kind", LOG_KV) in CONTEXT_LOG_KINDS) == grows_with_context]
    if not mine:
        return None
    try:
        return sum((Decimal(str(c["total_mib"])) for c in mine), Decimal(0))
    except (KeyError, InvalidOperation):
        return None
