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

# "creating <label> KV cache" announcements of the composite memories (iSWA, DSA, MSA, hybrid_idx)
_CREATING = re.compile(r"llama_\w+: creating\s+(non-SWA|SWA|DSA|main|indexer) KV cache")
_LABELS = {"non-SWA": "full", "SWA": "swa", "DSA": "full", "main": "kv", "indexer": "indexer"}
_KV_BUF = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB")
_KV_SIZE = re.compile(
    r"llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+)/(\d+) seqs\), "
    r"K \((\w+)\):\s+([\d.]+) MiB, V \((\w+)\):\s+([\d.]+) MiB"
)
_STATE_BUF = re.compile(r"llama_dsv4_comp_state:\s+(\S+) DSV4 (\w+) state buffer size =\s+([\d.]+) MiB")
_STATE_SIZE = re.compile(r"llama_dsv4_comp_state: (\w+) ratio = \d+, state = (\d+) x \d+, streams = (\d+), "
                         r"rs_seq = \d+, layers = (\d+), size =\s+([\d.]+) MiB")
_RS_BUF = re.compile(r"llama_memory_recurrent:\s+(\S+) RS buffer size =\s+([\d.]+) MiB")
_RS_SIZE = re.compile(
    r"llama_memory_recurrent: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+) seqs\s+(\d+) rs_seq\), "
    r"R \((\w+)\):\s+([\d.]+) MiB, S \((\w+)\):\s+([\d.]+) MiB, P \((\w+)\):\s+([\d.]+) MiB"
)
_COMPUTE = re.compile(r"(\S+) compute buffer size =\s+([\d.]+) MiB")
_MODEL = re.compile(r"(\S+) model buffer size =\s+([\d.]+) MiB")
_FA = re.compile(r"Flash Attention (enabled|not supported, set to disabled)")
_FA_PARAM = re.compile(r"llama_context: flash_attn\s+= (enabled|disabled|auto)")
_N_CTX = re.compile(r"llama_context: n_ctx\s+= (\d+)")
_N_CTX_SEQ = re.compile(r"llama_context: n_ctx_seq\s+= (\d+)")


@dataclass
class LoggedCache:
    """One KV cache or recurrent state as llama.cpp described it; MiB values are the printed strings.

    For recurrent state (``kind`` "rs") K and V stand for R and S, and ``p_mib`` is the PLE row."""

    name: str  # the announced label: "kv", "full", "swa", "indexer"; "recurrent"; csa/hca/lid state
    kind: str = "kv"  # "kv" (llama_kv_cache), "rs" (llama_memory_recurrent), "state" (DSV4 compressor)
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
    flash_attn_resolved: bool | None = None  # whether flash attention ended up on; None if not logged
    n_ctx: int | None = None
    n_ctx_seq: int | None = None


def parse_log(text: str) -> LlamaLog:
    """Every cache in the order llama.cpp created it: its buffer lines come first, then its size line."""
    out = LlamaLog()
    pending: str | None = None  # label announced for the next cache
    current: LoggedCache | None = None

    def cache(kind: str, name: str | None = None) -> LoggedCache:
        nonlocal current, pending
        if current is None or current.total_mib or current.kind != kind:  # a finished cache: open a new one
            current = LoggedCache(name or ("recurrent" if kind == "rs" else pending or "kv"), kind)
            out.caches.append(current)
            pending = None
        return current

    for line in text.splitlines():
        if m := _CREATING.search(line):
            pending = _LABELS[m.group(1)]
        elif m := _KV_BUF.search(line) or _RS_BUF.search(line):
            cache("rs" if m.re is _RS_BUF else "kv").buffers_mib[m.group(1)] = m.group(2)
        elif m := _KV_SIZE.search(line):
            c = cache("kv")
            c.total_mib = m.group(1)
            c.cells, c.layers = int(m.group(2)), int(m.group(3))
            c.seqs, c.streams = int(m.group(4)), int(m.group(5))
            c.type_k, c.k_mib, c.type_v, c.v_mib = m.group(6, 7, 8, 9)
        elif m := _STATE_BUF.search(line):
            cache("state", m.group(2)).buffers_mib[m.group(1)] = m.group(3)
        elif m := _STATE_SIZE.search(line):
            c = cache("state", m.group(1))
            c.cells, c.streams, c.seqs, c.layers, c.total_mib = int(m.group(2)), int(m.group(3)), int(m.group(3)), \
                int(m.group(4)), m.group(5)
        elif m := _RS_SIZE.search(line):
            c = cache("rs")
            c.total_mib = m.group(1)
            c.cells, c.layers, c.seqs, c.streams = int(m.group(2)), int(m.group(3)), int(m.group(4)), 1
            c.type_k, c.k_mib, c.type_v, c.v_mib, c.p_mib = m.group(6, 7, 8, 9, 11)
        elif m := _COMPUTE.search(line):
            out.compute_buffers_mib[m.group(1)] = m.group(2)
        elif m := _MODEL.search(line):  # one line per shard of a split model: summed per buffer type
            prev = out.model_buffers_mib.get(m.group(1))
            out.model_buffers_mib[m.group(1)] = m.group(2) if prev is None else str(Decimal(prev) + Decimal(m.group(2)))
        elif m := _FA.search(line):  # "auto" resolved by probing the backend
            out.flash_attn_resolved = m.group(1) == "enabled"
        elif m := _FA_PARAM.search(line):  # on, off, or auto already forced on (quantized V)
            out.flash_attn_resolved = {"enabled": True, "disabled": False}.get(m.group(1), out.flash_attn_resolved)
        elif m := _N_CTX.search(line):
            out.n_ctx = int(m.group(1))
        elif m := _N_CTX_SEQ.search(line):
            out.n_ctx_seq = int(m.group(1))
    return out


def mib_bytes(mib: str | Decimal) -> int:
    """Bytes of a MiB figure as llama.cpp prints it (two decimals): the one conversion of logged
    sizes, exact in Decimal, rounded to a byte (within 0.005 MiB of what was allocated)."""
    return int((Decimal(str(mib)) * 2**20).to_integral_value())


def logged_mib(caches: list[dict] | None, kinds: tuple[str, ...] | None = None) -> Decimal | None:
    """The sum of the ``total_mib`` llama.cpp printed for the logged caches (of ``kinds``: "kv",
    "rs", "state"; all when None), as printed; None when there is none or a value is not a number."""
    mine = [c for c in caches or [] if isinstance(c, dict) and (kinds is None or c.get("kind", "kv") in kinds)]
    if not mine:
        return None
    try:
        return sum((Decimal(str(c["total_mib"])) for c in mine), Decimal(0))
    except (KeyError, InvalidOperation):
        return None


def buffer_bytes(buffers: dict[str, str], device_re: str) -> int:
    """Bytes of the logged buffers of the devices matching ``device_re`` (e.g. r"CUDA\\d+")."""
    return sum(mib_bytes(mib) for dev, mib in buffers.items() if re.fullmatch(device_re, dev))
