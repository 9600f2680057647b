"""Compare a prediction with what llama.cpp reported, at the precision llama.cpp prints.

llama.cpp logs sizes in MiB with two decimals, so a prediction is "exact" when it prints the same
string the same way (see memory/caches.py: mib_f32 / mib_f64). Every disagreement is returned, never
rounded away: a mismatch means the model of llama.cpp's rules is wrong somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..measure.llama_log import LlamaLog
from ..memory.caches import mib_f32, mib_f64
from ..memory.predict import MemoryPrediction
from ..memory.placement import Placement


@dataclass(frozen=True)
class Mismatch:
    what: str  # e.g. "swa.k_mib"
    predicted: object
    measured: object

    def __str__(self) -> str:
        return f"{self.what}: predicted {self.predicted}, llama.cpp {self.measured}"


def kv_mismatches(pred: MemoryPrediction, log: LlamaLog, n_ctx: int | None = None,
                  n_ctx_seq: int | None = None, placement: Placement | None = None) -> list[Mismatch]:
    """Every field where the prediction and llama.cpp's log (and llama_n_ctx*) disagree.

    Caches are matched in creation order (the log's labels differ between memory kinds); every
    cache and recurrent state is compared. Without ``placement`` each is expected in one CPU
    buffer; with it, each device's buffer line is compared with that device's share."""
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
        if pc.log_kind == "state":  # llama_dsv4_comp_state logs its buffers' total in double
            cmp(f"{n}.total_mib", mib_f64(pc.buffer_bytes), lc.total_mib)
        else:
            cmp(f"{n}.type_k", pc.type_k, lc.type_k)
            cmp(f"{n}.type_v", pc.type_v, lc.type_v)
            cmp(f"{n}.k_mib", mib_f32(pc.k_bytes), lc.k_mib)
            cmp(f"{n}.v_mib", mib_f32(pc.v_bytes), lc.v_mib)
            if pc.log_kind == "rs":
                cmp(f"{n}.p_mib", mib_f32(pc.p_bytes), lc.p_mib)
            cmp(f"{n}.total_mib", mib_f32(pc.bytes), lc.total_mib)
        if placement is None:
            expected = {"CPU": pc.buffer_bytes} if pc.tensors else {}
        else:
            expected = {d.device: d.buffer_bytes for d in placement.kv if d.cache == n}
        cmp(f"{n}.buffer_devices", sorted(expected), sorted(lc.buffers_mib))
        for dev in sorted(set(expected) & set(lc.buffers_mib)):
            cmp(f"{n}.{dev}_buffer_mib", mib_f64(expected[dev]), lc.buffers_mib[dev])
    return out


# The checks a measured record carries, each True (agrees), False (disagrees) or None/absent (not
# judged: no prediction for this memory, no GPU, ...). One predicate for the live table, the sweep's
# summary, the report and the gates.
CHECK_KEYS = ("kv_exact", "rss_explained", "vram_explained", "weights_gpu_exact")


def failed_checks(check: dict) -> list[str]:
    """The checks that disagree with the prediction (an unjudged check never fails)."""
    return [k for k in CHECK_KEYS if check.get(k) is False]
