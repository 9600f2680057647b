"""Parse what llama.cpp logs while it loads a model and creates a context.

llama.cpp reports every allocation it makes in its log, with two decimals of MiB:

    llama_kv_cache_iswa: creating non-SWA KV cache, size = 512 cells
    llama_kv_cache:        CPU KV buffer size =     0.75 MiB
    llama_kv_cache: size =    0.75 MiB (   512 cells,   4 layers,  3/3 seqs), K (f16):    0.38 MiB, V (f16):    0.38 MiB
    sched_reserve:        CPU compute buffer size =     1.27 MiB
    load_tensors:   CPU_Mapped model buffer size =     0.95 MiB
    resolve_fused_ops: Flash Attention enabled

Pure text processing, no llama_cpp import, so it is tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CREATING = re.compile(r"llama_kv_cache_iswa: creating\s+(non-SWA|SWA) KV cache, size = (\d+) cells")
_KV_BUF = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB")
_KV_SIZE = re.compile(
    r"llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+)/(\d+) seqs\), "
    r"K \((\w+)\):\s+([\d.]+) MiB, V \((\w+)\):\s+([\d.]+) MiB"
)
_COMPUTE = re.compile(r"(\S+) compute buffer size =\s+([\d.]+) MiB")
_MODEL = re.compile(r"(\S+) model buffer size =\s+([\d.]+) MiB")
_FA = re.compile(r"Flash Attention (enabled|not supported, set to disabled)")
_FA_PARAM = re.compile(r"llama_context: flash_attn\s+= (enabled|disabled|auto)")
_N_CTX = re.compile(r"llama_context: n_ctx\s+= (\d+)")
_N_CTX_SEQ = re.compile(r"llama_context: n_ctx_seq\s+= (\d+)")


@dataclass
class LoggedCache:
    """One KV cache as llama.cpp described it; MiB values are kept as the printed strings."""

    name: str  # "kv", or "full" / "swa" for the two caches of an iSWA model
    cells: int = 0
    layers: int = 0
    seqs: int = 0
    streams: int = 0
    type_k: str = ""
    type_v: str = ""
    total_mib: str = ""
    k_mib: str = ""
    v_mib: str = ""
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
    out = LlamaLog()
    pending: str | None = None  # name announced by llama_kv_cache_iswa for the next cache
    current: LoggedCache | None = None
    for line in text.splitlines():
        if m := _CREATING.search(line):
            pending = "full" if m.group(1) == "non-SWA" else "swa"
        elif m := _KV_BUF.search(line):
            if current is None or current.total_mib:  # a buffer line opens a new cache
                current = LoggedCache(pending or "kv")
                out.caches.append(current)
                pending = None
            current.buffers_mib[m.group(1)] = m.group(2)
        elif m := _KV_SIZE.search(line):
            if current is None or current.total_mib:
                current = LoggedCache(pending or "kv")
                out.caches.append(current)
                pending = None
            current.total_mib = m.group(1)
            current.cells, current.layers = int(m.group(2)), int(m.group(3))
            current.seqs, current.streams = int(m.group(4)), int(m.group(5))
            current.type_k, current.k_mib, current.type_v, current.v_mib = m.group(6, 7, 8, 9)
        elif m := _COMPUTE.search(line):
            out.compute_buffers_mib[m.group(1)] = m.group(2)
        elif m := _MODEL.search(line):
            out.model_buffers_mib[m.group(1)] = m.group(2)
        elif m := _FA.search(line):  # "auto" resolved by probing the backend
            out.flash_attn_resolved = m.group(1) == "enabled"
        elif m := _FA_PARAM.search(line):  # on, off, or auto already forced on (quantized V)
            out.flash_attn_resolved = {"enabled": True, "disabled": False}.get(m.group(1), out.flash_attn_resolved)
        elif m := _N_CTX.search(line):
            out.n_ctx = int(m.group(1))
        elif m := _N_CTX_SEQ.search(line):
            out.n_ctx_seq = int(m.group(1))
    return out
