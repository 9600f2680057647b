"""Compare a prediction with what llama.cpp reported, at the precision llama.cpp prints.

llama.cpp logs sizes in MiB with two decimals, so a prediction is "exact" when it prints the same
string the same way (see memory/caches.py: mib_f32 / mib_f64). Every disagreement is returned, never
rounded away: a mismatch means the model of llama.cpp's rules is wrong somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .llama_log import LlamaLog, mib_bytes
from ..memory.caches import LOG_RS, LOG_STATE, mib_f32, mib_f64
from ..memory.footprint import HOST, gpu_bytes
from ..memory.predict import MemoryPrediction
from ..memory.graph import GRAPH_RESULTS_AT_CREATION
from ..memory.placement import CPU, EXTRA_BUFTS, MAPPED, Placement, is_host_buffer, is_rpc_buffer
from .schema import CHECK_KEYS, Record


@dataclass(frozen=True)
class Mismatch:
    what: str  # e.g. "swa.k_mib"
    predicted: object
    measured: object

    def __str__(self) -> str:
        return f"{self.what}: predicted {self.predicted}, llama.cpp {self.measured}"


def kv_mismatches(pred: MemoryPrediction, log: LlamaLog, n_ctx: int | None = None,
                  n_ctx_seq: int | None = None, placement: Placement | None = None,
                  check_buffers: bool = True) -> list[Mismatch]:
    """Every field where the prediction and llama.cpp's log (and llama_n_ctx*) disagree.

    Caches are matched in creation order (the log's labels differ between memory kinds); every
    cache and recurrent state is compared. Without ``placement`` each is expected in one CPU
    buffer; with it, each device's buffer line is compared with that device's share.
    ``check_buffers`` False for a dry run, whose buffers are dummies of 0 bytes."""
    out: list[Mismatch] = []

    def cmp(what: str, p: object, m: object) -> None:
        if p != m:
            out.append(Mismatch(what, p, m))

    if n_ctx is not None:
        cmp("n_ctx", pred.n_ctx, n_ctx)
    if n_ctx_seq is not None:
        cmp("n_ctx_seq", pred.n_ctx_seq, n_ctx_seq)
    cmp("caches", [c.log_kind for c in pred.caches], [c.kind for c in log.caches])
    for pc, lc in zip(pred.caches, log.caches):
        n = pc.name
        cmp(f"{n}.cells", pc.cells, lc.cells)
        cmp(f"{n}.layers", pc.logged_layers, lc.layers)
        cmp(f"{n}.seqs", pc.n_seq_max, lc.seqs)
        cmp(f"{n}.streams", pc.streams, lc.streams)
        if pc.log_kind == LOG_STATE:  # llama_dsv4_comp_state logs its buffers' total in double
            cmp(f"{n}.total_mib", mib_f64(pc.buffer_bytes), lc.total_mib)
        else:
            cmp(f"{n}.type_k", pc.type_k, lc.type_k)
            cmp(f"{n}.type_v", pc.type_v, lc.type_v)
            cmp(f"{n}.k_mib", mib_f32(pc.k_bytes), lc.k_mib)
            cmp(f"{n}.v_mib", mib_f32(pc.v_bytes), lc.v_mib)
            if pc.log_kind == LOG_RS:
                cmp(f"{n}.p_mib", mib_f32(pc.p_bytes), lc.p_mib)
            cmp(f"{n}.total_mib", mib_f32(pc.bytes), lc.total_mib)
        if not check_buffers:
            continue
        if placement is None:
            expected = {"CPU": pc.buffer_bytes} if pc.tensors else {}
        else:
            expected = {d.device: d.buffer_bytes for d in placement.kv if d.cache == n}
        cmp(f"{n}.buffer_devices", sorted(expected), sorted(lc.buffers_mib))
        for dev in sorted(set(expected) & set(lc.buffers_mib)):
            cmp(f"{n}.{dev}_buffer_mib", mib_f64(expected[dev]), lc.buffers_mib[dev])
    return out


def failed_checks(check: dict) -> list[str]:
    """The checks that disagree with the prediction (an unjudged check never fails): one predicate for
    the live table, the sweep's summary, the report and the gates (CHECK_KEYS: results/schema.py)."""
    return [k for k in CHECK_KEYS if check.get(k) is False]


def local_devices(log: LlamaLog) -> list[str]:
    """The devices in this process's log that allocate in this process (a GPU: CUDA0, ...), not on
    an rpc-server, whose buffers live in the server's process (ggml-rpc.cpp)."""
    return [d for d in log.gpu_devices if not is_rpc_buffer(d)]


# --- measured memory against the prediction (tolerances stated before measuring) ----------------

RSS_TOL_ABS = 4 * 1024 * 1024  # allocator and graph metadata beside the KV buffer
RSS_TOL_REL = 0.01


def rss_check(rec: Record, placement: Placement, log: LlamaLog, graph_meta: int = 0) -> dict:
    """RSS growth at context creation vs the KV buffers in host memory (llama.cpp clears them, so
    their pages are touched; the compute buffer is touched only by the first decode) and the reserve
    graph's metadata, ``graph_meta`` (memory/graph.py: zeroed when sized; several MiB on the hybrid
    and linear-attention architectures, whose graphs llama.cpp sizes by the batch).

    Stated tolerance, fixed before measuring: 4 MiB + 1 % of the KV buffers (the scheduler's tables
    and allocator metadata; ~1.2 MiB was seen on SmolLM2)."""
    rss = rec.measured["rss"]
    growth = rss["after_context"] - rss["after_load"]
    expected = placement.kv_buffer("CPU") + GRAPH_RESULTS_AT_CREATION * graph_meta
    tol = RSS_TOL_ABS + int(RSS_TOL_REL * expected)
    if local_devices(log):
        # With the CUDA backend, context creation also allocates pinned host compute buffers
        # (CUDA_Host, counted below) and CUDA runtime memory that llama.cpp does not log: reported
        # (4.8 to 11 MiB above KV + pinned buffers on the H200 run), not judged.
        expected += sum(mib_bytes(mib) for dev, mib in log.compute_buffers_mib.items()
                        if dev != CPU and is_host_buffer(dev))
        return {"rss_growth": growth, "rss_expected": expected, "rss_error": growth - expected,
                "rss_explained": None,
                "rss_note": "GPU backend: CUDA runtime host allocations are not in llama.cpp's log"}
    return {"rss_growth": growth, "rss_expected": expected, "rss_tolerance": tol,
            "rss_error": growth - expected, "rss_explained": abs(growth - expected) <= tol}


VRAM_TOL = 8 * 1024 * 1024  # stated before the H100 run; ~4 MiB was seen there in an earlier session


def vram_check(rec: Record, placement: Placement, log) -> dict:
    """VRAM growth of this process at context creation vs the GPU's KV buffer + GPU compute buffer
    (both allocated by llama_init_from_model)."""
    v = rec.measured.get("vram")
    if not v or v.get("after_context_process") is None or v.get("after_load_process") is None:
        return {}
    growth = v["after_context_process"] - v["after_load_process"]
    # this process's device buffers only: CUDA_Host is pinned *host* memory, an rpc-server's buffers
    # are its own process's memory
    gpus = local_devices(log)
    expected = sum(placement.kv_buffer(d) for d in gpus) + sum(
        mib_bytes(mib) for dev, mib in log.compute_buffers_mib.items() if dev in gpus)
    return {"vram_growth": growth, "vram_expected": expected, "vram_tolerance": VRAM_TOL,
            "vram_error": growth - expected, "vram_explained": abs(growth - expected) <= VRAM_TOL}


def repack_check(placement: Placement, log: LlamaLog, predicted: bool) -> dict:
    """Weights llama.cpp copies into the CPU's extra buffer types for this CPU (CPU_REPACK; AMX where
    the CPU has it): each predicted buffer (placement.host_extra) vs its 'model buffer size' line, a
    buffer type in one and not the other a mismatch; ``weights_repack_predicted`` and ``_logged_mib``
    their sums (0 when there is none). Not judged when the buffer types could not be asked of
    llama.cpp (``predicted`` False: the model file is not here)."""
    logged = {d: mib for d, mib in log.model_buffers_mib.items() if d in EXTRA_BUFTS}
    bad = _buffer_mismatches(placement.host_extra, logged)
    return {"weights_repack_predicted": sum(placement.host_extra.values()) if predicted else None,
            "weights_repack_logged_mib": f"{sum(map(Decimal, logged.values()), Decimal(0)):.2f}",
            "weights_repack_mismatches": bad if predicted else None,
            "weights_repack_exact": not bad if predicted else None}


def _buffer_mismatches(predicted: dict[str, int], logged: dict[str, str]) -> list[str]:
    """Each buffer type either names whose predicted bytes (as llama.cpp prints MiB) and logged MiB differ."""
    mine = {d: mib_f64(n) for d, n in predicted.items()}
    return [f"{d}: predicted {mine.get(d, 'no buffer')}, llama.cpp {logged.get(d, 'no buffer')}"
            for d in sorted(set(mine) | set(logged)) if mine.get(d) != logged.get(d)]


def host_weights_check(placement: Placement, log: LlamaLog) -> dict:
    """Host weights as the load mode makes them (memory/placement.py; llama_model::load_tensors): with
    mmap the ``CPU_Mapped`` file range, without it the real buffers (``CPU``, a GPU's ``CUDA_Host``),
    each vs its 'model buffer size' line; the extra buffer types have their own check (repack_check)."""
    logged = {d: mib for d, mib in log.model_buffers_mib.items() if is_host_buffer(d) and d not in EXTRA_BUFTS}
    predicted = {d: n for d, n in placement.host_model_buffers.items() if d not in EXTRA_BUFTS}
    bad = _buffer_mismatches(predicted, logged)
    return {"weights_host_mmap": placement.mmap, "weights_host_predicted": predicted, "weights_host_logged_mib": logged,
            "weights_host_mismatches": bad, "weights_host_exact": not bad,
            "weights_host_mapped_predicted": placement.host_mapped,
            "weights_host_mapped_logged_mib": log.model_buffers_mib.get(MAPPED)}


def weights_check(placement: Placement, log: LlamaLog) -> dict:
    """Weights on every offload device (a GPU, an rpc-server): each device's predicted model buffer
    (tensors padded as its buffer type allocates: memory/placement.py alloc_size) vs llama.cpp's
    '<device> model buffer size' line (llama_model::load_tensors, src/llama-model.cpp), for every
    device either names; a device in one and not the other disagrees. Not judged when nothing is
    offloaded. Host weights: host_weights_check."""
    logged = {d: mib for d, mib in log.model_buffers_mib.items() if not is_host_buffer(d)}
    if not logged and not placement.weights_buffer:
        return {}
    names = sorted(set(logged) | set(placement.weights_buffer))
    bad = _buffer_mismatches(placement.weights_buffer, logged)
    first = placement.gpu if placement.gpu in logged else (names[0] if names else None)
    return {"weights_gpu_predicted": placement.gpu_weights_buffer, "weights_gpu_logged_mib": logged.get(first),
            "weights_by_device": {d: {"predicted_bytes": placement.weights_buffer.get(d, 0),
                                      "logged_mib": logged.get(d)} for d in names},
            "weights_gpu_mismatches": bad, "weights_gpu_exact": not bad}


# Stated before the second H100 run: cudaMalloc rounds each buffer (weights, KV, compute) up to
# 2 MiB pages; earlier runs saw 2-6 MiB over KV + compute alone.
VRAM_TOTAL_TOL = 16 * 1024 * 1024
FOOTPRINT_TOL_ABS = 16 * 1024 * 1024  # Python objects, allocator arenas and thread stacks of the decode
FOOTPRINT_TOL_REL = 0.02


def footprint_check(rec: Record, devices: list, placement: Placement | None = None) -> dict:
    """The whole predicted footprint (memory/footprint.py) against what the process holds after the
    warm-up decode. On the CPU an allocation is an *upper bound* of resident memory (pages never
    touched are not resident), so the check is RSS growth since before the model was loaded <=
    predicted host total + 16 MiB + 2 % (stated before measuring); the resident share is reported
    beside it, never mixed into it. With NVML, VRAM growth is compared with the GPU totals the same way.

    The load mode decides what the load itself makes resident (``placement``): without mmap (-lm
    none, mlock, dio) the host weights are real buffers that llama.cpp fills at load (load_all_data),
    anonymous and resident, so RSS growth over the load must be at least those buffers plus
    CPU_REPACK, less 4 MiB + 1 % (``weights_resident_explained``; stated before measuring). Only the
    lower side is judged: the load also holds the vocabulary and metadata, in no log line (+17 MiB
    on SmolLM2 in either load mode). With mmap the weights are file-backed pages, paged in as they are
    used (llama.cpp asks the kernel to prefetch them; whether it does is the kernel's): reported, not
    judged."""
    host = next((d for d in devices if d.device == HOST), None)
    # this process's devices (an rpc-server's memory is its own process's: neither RSS nor NVML here sees it)
    gpu = gpu_bytes([d for d in devices if not is_rpc_buffer(d.device)])
    rss = rec.measured.get("rss") or {}
    out: dict = {}
    if host is not None and rss.get("after_warmup") is not None and rss.get("baseline") is not None:
        growth = rss["after_warmup"] - rss["baseline"]
        tol = FOOTPRINT_TOL_ABS + int(FOOTPRINT_TOL_REL * host.total_bytes)
        out.update(total_host_predicted=host.total_bytes, rss_growth_after_warmup=growth, total_tolerance=tol,
                   total_resident_share=growth / host.total_bytes if host.total_bytes else None,
                   # with a GPU backend the CUDA runtime's host allocations are in no log: reported, not judged
                   total_within_prediction=None if gpu else growth <= host.total_bytes + tol)
    if placement is not None and rss.get("after_load") is not None and rss.get("baseline") is not None:
        growth = rss["after_load"] - rss["baseline"]
        resident = None if placement.mmap else placement.host_weights + sum(placement.host_extra.values())
        tol = RSS_TOL_ABS + int(RSS_TOL_REL * (resident or 0))
        out.update(rss_growth_at_load=growth, weights_resident_predicted=resident,
                   weights_resident_tolerance=None if resident is None else tol,
                   weights_resident_explained=None if resident is None else growth >= resident - tol)
    v = rec.measured.get("vram") or {}
    if gpu and v.get("after_context_process") is not None and v.get("after_init_process") is not None:
        # counted from the CUDA context (created before the model, as llama.cpp's --fit measures free
        # memory after creating it): weights + KV + state + compute on the GPU, allocated by llama.cpp
        growth = v["after_context_process"] - v["after_init_process"]
        out.update(total_gpu_predicted=gpu, vram_growth_total=growth, vram_total_error=growth - gpu,
                   vram_total_tolerance=VRAM_TOTAL_TOL,
                   vram_total_explained=abs(growth - gpu) <= VRAM_TOTAL_TOL)
        if v.get("after_warmup_process") is not None:
            # the first decode's cuBLAS workspace and CUDA memory pools: real, in no log (what the
            # --fit margin is for); reported, not judged
            out["vram_unlogged_after_warmup"] = v["after_warmup_process"] - v["after_context_process"]
    return out
