"""The KV cache arithmetic of one prediction, step by step, and the common formulas beside it (pure).

Why: "how big is the KV cache" usually gets ``2 × layers × hidden_size × ctx × 2 bytes``, which is
wrong for most models in front of people (grouped-query attention, SWA layers, MLA, padding to 256
cells, one stream per sequence, the block sizes of quantized types). ``explain`` answers with the
steps llama.cpp takes, as a *view of the prediction* (predict.py): every step is read off the cache
tensors ``predict`` returns (memory/caches.py), grouped into layers whose tensors are alike; its
arithmetic (layers × cells × streams × bytes per row) is checked against those tensors' bytes, and
the steps against ``estimate``'s total. The rules themselves stay where they are (settings.resolve,
iswa.swa_cells, kv_cache, ...); here they are only called and worded.

Then the formulas people copy, each with its number, its ratio to the exact figure and the
assumptions that break it on this model:

(a) hidden_size-based: ``2 × layers × hidden × ctx × 2 bytes × sequences``;
(b) GQA-aware but SWA-blind: ``2 × layers × n_head_kv × head_dim × ctx × bytes per value``;
(c) "q8_0 is half of f16": the f16 figure scaled by the type's nominal bits (8/16, 4/16, 5/16);
(d) the stream layout does not matter: the same settings with the other ``kv_unified``.

Recurrent and compressor state is a fixed size per sequence: it is explained as such and has no
formula in the context size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import groupby

from ..errors import GgufprofError
from ..model import ggml_types
from ..model.model_info import ModelInfo
from .caches import CACHE_KINDS, INDEXER, MLA, RECURRENT, STATE, SWA, Cache, CacheTensor, pad
from .iswa import SWA_PAD, swa_window_cells
from .predict import MemoryPrediction, predict, resolved
from .settings import CTX_PAD, KVSettings

# What people take a quantized type to cost: its nominal bits per value, the block's scales forgotten.
NOMINAL_BITS = {"f32": 32, "f16": 16, "bf16": 16, "q8_0": 8, "q4_0": 4, "q4_1": 4, "iq4_nl": 4, "q5_0": 5, "q5_1": 5}
ROLE_NAMES = {"k": "K", "v": "V", "r": "R", "s": "S", "p": "P"}


@dataclass(frozen=True)
class Row:
    """One row of a cache tensor: the values one cell (or one sequence's state) holds in one layer."""

    role: str  # K, V; R, S, P for recurrent state; K (kv) and V (score) rows of compressor state
    width: int  # values per row (the tensor's ne[0])
    width_note: str  # where the width comes from: "n_head_kv 2 × head_dim 32", "MLA latent ..."
    type: str

    @property
    def ggml(self) -> ggml_types.GgmlType:
        return ggml_types.BY_NAME[self.type]

    @property
    def bytes(self) -> int:
        """Bytes of one row (ggml's nb[1]): whole blocks of blck_size values, type_size bytes each."""
        t = self.ggml
        return self.width // t.blck_size * t.type_size

    def to_dict(self) -> dict:
        t = self.ggml
        return {"role": self.role, "width": self.width, "width_note": self.width_note, "type": self.type,
                "block_size": t.blck_size, "bytes_per_block": t.type_size, "row_bytes": self.bytes}


@dataclass(frozen=True)
class Step:
    """One group of alike layers of one cache: layers × cells × streams × bytes per row."""

    cache: str
    kind: str  # caches.CACHE_KINDS
    layers: tuple[int, ...]
    cells: int  # per stream (ne[1]); rows per sequence for state
    streams: int  # the product of ne[2:]
    cells_note: str
    rows: tuple[Row, ...]
    bytes: int  # the prediction's bytes of these tensors (ggml_nbytes)

    @property
    def grows_with_context(self) -> bool:
        return CACHE_KINDS[self.kind].grows_with_context

    @property
    def row_bytes(self) -> int:
        return sum(r.bytes for r in self.rows)

    @property
    def product(self) -> int:
        return len(self.layers) * self.cells * self.streams * self.row_bytes

    def to_dict(self) -> dict:
        return {"cache": self.cache, "kind": self.kind, "layers": list(self.layers), "cells": self.cells,
                "streams": self.streams, "cells_note": self.cells_note, "rows": [r.to_dict() for r in self.rows],
                "row_bytes": self.row_bytes, "bytes": self.bytes}


@dataclass(frozen=True)
class Formula:
    """A common formula, its number for these settings and what breaks it (``bytes`` None: it does not
    apply here, ``note`` says why)."""

    key: str
    name: str
    expression: str
    bytes: int | None
    exact: int
    broken: tuple[str, ...] = ()
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.bytes / self.exact if self.bytes is not None and self.exact else None

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "expression": self.expression, "bytes": self.bytes,
                "exact": self.exact, "ratio": self.ratio, "broken_by": list(self.broken), "note": self.note}


@dataclass(frozen=True)
class Explanation:
    settings: KVSettings
    memory: str  # create.MEMORY_KINDS key
    n_ctx_requested: int
    n_ctx_padded: int
    n_ctx: int
    n_ctx_seq: int
    n_ubatch: int
    context_note: str
    steps: tuple[Step, ...]
    kv_bytes: int  # estimate's kv_bytes
    recurrent_bytes: int  # estimate's recurrent_bytes
    formulas: tuple[Formula, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return self.kv_bytes + self.recurrent_bytes

    def to_dict(self) -> dict:
        return {"settings": dataclasses.asdict(self.settings), "memory": self.memory,
                "n_ctx_requested": self.n_ctx_requested, "n_ctx_padded": self.n_ctx_padded, "n_ctx": self.n_ctx,
                "n_ctx_seq": self.n_ctx_seq, "n_ubatch": self.n_ubatch, "context_note": self.context_note,
                "steps": [s.to_dict() for s in self.steps], "kv_bytes": self.kv_bytes,
                "recurrent_bytes": self.recurrent_bytes, "total_bytes": self.total_bytes,
                "formulas": [f.to_dict() for f in self.formulas], "notes": list(self.notes)}


def layer_ranges(layers: tuple[int, ...] | list[int]) -> str:
    """(0, 1, 2, 3, 4, 6, 7) -> '0-4, 6-7'."""
    out = []
    for _, run in groupby(enumerate(sorted(layers)), key=lambda x: x[1] - x[0]):
        ils = [il for _, il in run]
        out.append(str(ils[0]) if len(ils) == 1 else f"{ils[0]}-{ils[-1]}")
    return ", ".join(out)


# --- the steps: a view of the prediction's tensors ---------------------------------------------

def _width_note(model: ModelInfo, cache: Cache, t: CacheTensor, v_trans: bool) -> str:
    """Where a row's width comes from, in the hyper-parameters' words (matched, never recomputed)."""
    hp, il, w = model.hparams, t.layer, t.ne[0]
    if cache.kind == RECURRENT:
        return {"r": "conv / token-shift state (n_embd_r)", "s": "SSM / WKV state (n_embd_s)",
                "p": "per-layer-embedding history"}[t.role]
    if cache.kind == STATE:
        return "compressor " + ("kv" if t.role == "k" else "score") + " rows"
    if cache.kind == INDEXER:
        return f"indexer key: one head of {w}"
    if t.role == "k" and hp.is_mla() and hp.n_lora_kv and w >= hp.n_lora_kv:
        return f"MLA latent: kv_lora_rank {hp.n_lora_kv}" + (f" + rope {w - hp.n_lora_kv}" if w > hp.n_lora_kv else "")
    head = hp.n_embd_head_k(il) if t.role == "k" else hp.n_embd_head_v(il)
    if w == hp.n_head_kv(il) * head:
        return f"n_head_kv {hp.n_head_kv(il)} × head_dim{'' if t.role == 'k' else '_v'} {head}"
    if t.role == "v" and v_trans and w == hp.n_embd_v_gqa_max():
        return "V transposed (flash attention off): padded to the widest layer's V"
    return f"{w} values"


def _cells_note(model: ModelInfo, pred: MemoryPrediction, cache: Cache, cells: int) -> str:
    """How many cells a stream holds and why, from the settings' resolved sizes and the SWA rule."""
    s = pred.settings
    if cache.kind == RECURRENT:
        return f"{cells} row(s): one per sequence, whatever the context"
    if cache.kind == STATE:
        return f"{cells} state rows per sequence, whatever the context"
    if cache.kind == SWA:
        if s.swa_full and cells == pred.n_ctx_seq:
            return f"n_ctx_seq {cells} (swa_full: the whole context, not the window)"
        w = swa_window_cells(model.hparams, s.parallel, pred.n_ubatch, s.kv_unified)
        if pad(min(pred.n_ctx_seq, w), SWA_PAD) == cells:
            seqs = f" × {s.parallel} sequences" if s.kv_unified and s.parallel > 1 else ""
            capped = min(pred.n_ctx_seq, w)
            return (f"min(n_ctx_seq {pred.n_ctx_seq}, n_swa {model.hparams.n_swa}{seqs} + n_ubatch {pred.n_ubatch}"
                    f" = {w}) = {capped}" + (f", padded to {SWA_PAD}: {cells}" if capped != cells else ""))
    if cells == pred.n_ctx_seq:
        return f"n_ctx_seq {cells}"
    return f"{cells}: this cache's own size (llama.cpp's {cache.name} cache)"


def _steps(model: ModelInfo, pred: MemoryPrediction) -> list[Step]:
    steps = []
    for cache in pred.caches:
        per_layer: dict[int, list[CacheTensor]] = {}
        for t in cache.tensors:
            per_layer.setdefault(t.layer, []).append(t)

        def shape(il: int) -> tuple:
            return tuple((t.role, t.ne, t.type) for t in per_layer[il])

        for key in dict.fromkeys(shape(il) for il in sorted(per_layer)):
            layers = tuple(il for il in sorted(per_layer) if shape(il) == key)
            first = per_layer[layers[0]]
            cells, streams = first[0].ne[1], math.prod(first[0].ne[2:])
            rows = tuple(Row(ROLE_NAMES[t.role], t.ne[0], _width_note(model, cache, t, pred.v_trans), t.type)
                         for t in first)
            nbytes = sum(t.nbytes for il in layers for t in per_layer[il])
            steps.append(Step(cache.name, cache.kind, layers, cells, streams,
                              _cells_note(model, pred, cache, cells), rows, nbytes))
    return steps


def _context_note(pred: MemoryPrediction, requested: int, padded: int) -> str:
    s = pred.settings
    parts = [f"-c {s.ctx_size}" if s.ctx_size else f"-c 0 = n_ctx_train {requested}"]
    if padded != requested:
        parts.append(f"padded to {CTX_PAD}: {padded}")
    if s.parallel == 1:
        parts.append(f"n_ctx_seq {pred.n_ctx_seq}, one stream")
    elif s.kv_unified:
        parts.append(f"one unified stream of n_ctx_seq {pred.n_ctx_seq} cells shared by {s.parallel} sequences")
    else:
        share = padded // s.parallel
        parts.append(f"÷ {s.parallel} sequences = {share}"
                     + (f", padded to {CTX_PAD}: {pred.n_ctx_seq}" if share != pred.n_ctx_seq else "")
                     + f" cells per stream, {s.parallel} streams (n_ctx {pred.n_ctx})")
    return " → ".join(parts)


# --- the formulas people use ------------------------------------------------------------------

def _bpv(type_name: str) -> Fraction:
    """Bytes per value of a cache type: type_size / blck_size (34/32 for q8_0)."""
    t = ggml_types.BY_NAME[type_name]
    return Fraction(t.type_size, t.blck_size)


def _fmt(x: Fraction) -> str:
    return f"{float(x):g}"


def _type_text(type_name: str) -> str:
    t = ggml_types.BY_NAME[type_name]
    if t.is_quantized:
        return f"{t.name}: {t.blck_size} values in {t.type_size} B ({_fmt(_bpv(t.name))} B per value)"
    return f"{t.name}: {t.type_size} B per value"


@dataclass
class _Facts:
    """What the steps say about the assumptions of the formulas."""

    model: ModelInfo
    pred: MemoryPrediction
    steps: list[Step]
    requested: int
    padded: int

    @property
    def kv_steps(self) -> list[Step]:
        return [st for st in self.steps if st.grows_with_context]

    @property
    def attention(self) -> list[Step]:
        return [st for st in self.kv_steps if st.kind != INDEXER]

    def widths_unlike(self, expected: int) -> list[str]:
        seen = []
        for st in self.attention:
            for r in st.rows:
                text = f"{r.role} {r.width_note} = {r.width}" if r.width_note != f"{r.width} values" else \
                    f"{r.role} {r.width}"
                if r.width != expected and text not in seen:
                    seen.append(text)
        return seen

    def common(self) -> list[str]:
        """Assumptions (a) and (b) share: every layer caches K and V of the full context."""
        out = []
        L, n_seq_ctx = self.model.hparams.n_layer(), self.pred.n_ctx_seq
        if any(st.kind == MLA for st in self.attention):
            out.append("MLA: one latent K row per token and layer, V is read from it (no V rows)")
        cached = {il for st in self.attention for il in st.layers}
        if len(cached) != L:
            out.append(f"{len(cached)} of {L} layers keep a KV cache")
        for st in self.kv_steps:
            if st.kind == INDEXER:
                out.append(f"an indexer key cache adds {st.bytes:,} B (layers {layer_ranges(st.layers)})")
            elif st.kind == SWA and st.cells < n_seq_ctx:
                out.append(f"{len(st.layers)} sliding-window layers keep {st.cells} cells per stream, not {n_seq_ctx}: "
                           + st.cells_note)
            elif st.cells != n_seq_ctx and st.kind != SWA:
                out.append(f"the {st.cache} cache holds {st.cells} cells per stream, not {n_seq_ctx}")
        if self.padded != self.requested:
            out.append(f"the context is padded to a multiple of {CTX_PAD}: {self.padded} cells, not {self.requested}")
        if self.pred.n_ctx != self.padded:
            out.append(f"each stream is padded to {CTX_PAD}: {self.pred.n_ctx} cells in all, not {self.padded}")
        if self.pred.v_trans and self.model.hparams.is_n_embd_v_gqa_variable():
            out.append("flash attention off: V is stored transposed, every layer's V padded to the widest")
        return out


def _formula_a(f: _Facts, exact: int) -> Formula:
    s, hp = f.pred.settings, f.model.hparams
    L, H, ctx, n = hp.n_layer(), hp.n_embd, f.requested, s.parallel
    value = 2 * L * H * ctx * 2 * n
    expr = f"2 × {L} layers × {H} hidden × {ctx} ctx × 2 B × {n} sequence{'s' if n > 1 else ''}"
    broken = []
    if value != exact:
        if w := f.widths_unlike(H):
            broken.append(f"K/V rows are not hidden_size {H} wide: " + "; ".join(w[:3]))
        broken += f.common()
        if n > 1:
            broken.append(f"-c is the context of all {n} sequences together, not of each: "
                          + (f"one stream of {f.pred.n_ctx_seq} cells" if s.kv_unified
                             else f"{n} streams of {f.pred.n_ctx_seq} cells"))
        roles = {r.role for st in f.attention for r in st.rows}
        for role, t in (("K", s.cache_type_k), ("V", s.cache_type_v)):
            if role in roles and _bpv(t) != 2:
                broken.append(f"{role} cache type " + _type_text(t) + ", not 2 B")
    return Formula("a", "hidden_size-based", expr, value, exact, _or_unnamed(broken, value, exact))


def _formula_b(f: _Facts, exact: int) -> Formula:
    s, hp = f.pred.settings, f.model.hparams
    il = min(il for st in f.attention for il in st.layers)
    L, kv, hd, ctx = hp.n_layer(), hp.n_head_kv(il), hp.n_embd_head_k(il), f.requested
    tk, tv = ggml_types.kv_cache_type(s.cache_type_k).name, ggml_types.kv_cache_type(s.cache_type_v).name
    value = int(L * kv * hd * ctx * (_bpv(tk) + _bpv(tv)))
    per = f"{_fmt(_bpv(tk))} B" if tk == tv else f"({_fmt(_bpv(tk))} + {_fmt(_bpv(tv))}) B / 2"
    expr = f"2 × {L} layers × {kv} KV head{'s' if kv != 1 else ''} × {hd} head_dim × {ctx} ctx × {per}"
    broken = []
    if value != exact:
        if w := f.widths_unlike(kv * hd):
            broken.append(f"K/V rows are not {kv} × {hd} = {kv * hd} wide on every layer: " + "; ".join(w[:3]))
        broken += f.common()
    return Formula("b", "GQA-aware, SWA-blind", expr, value, exact, _or_unnamed(broken, value, exact))


def _formula_c(model: ModelInfo, f: _Facts, exact: int) -> Formula:
    s = f.pred.settings
    types = [ggml_types.kv_cache_type(t).name for t in (s.cache_type_k, s.cache_type_v)]
    name = '"q8_0 is half of f16"'
    if not any(ggml_types.BY_NAME[t].is_quantized for t in types):
        return Formula("c", name, "", None, exact, note="no quantized cache type here")
    f16 = predict(model, dataclasses.replace(s, cache_type_k="f16", cache_type_v="f16"))
    k16 = sum(c.k_bytes for c in f16.caches if c.grows_with_context)
    v16 = sum(c.v_bytes for c in f16.caches if c.grows_with_context)
    value = (k16 * NOMINAL_BITS[types[0]] + v16 * NOMINAL_BITS[types[1]]) // 16
    if types[0] == types[1]:
        expr = f"f16's {k16 + v16:,} B × {NOMINAL_BITS[types[0]]}/16 ({types[0]})"
    else:
        expr = f"f16's K {k16:,} B × {NOMINAL_BITS[types[0]]}/16 + V {v16:,} B × {NOMINAL_BITS[types[1]]}/16"
    broken = [f"{_type_text(t)}, not {NOMINAL_BITS[t] / 8:g}: each block carries its scale"
              for t in dict.fromkeys(types) if ggml_types.BY_NAME[t].is_quantized] if value != exact else []
    return Formula("c", name, expr, value, exact, _or_unnamed(broken, value, exact))


def _formula_d(model: ModelInfo, pred: MemoryPrediction, exact: int) -> Formula:
    s = pred.settings
    name = "per-sequence vs unified"
    if s.parallel == 1:
        return Formula("d", name, "", None, exact, note="one sequence: one stream either way")
    flipped = dataclasses.replace(s, kv_unified=not s.kv_unified)
    other = predict(model, flipped)
    value = other.kv_bytes
    label = "on" if flipped.kv_unified else "off"
    expr = f"the same settings with kv_unified {label}"
    broken = []
    if value != exact:
        theirs = {c.name: c for c in other.caches if c.grows_with_context}
        for c in pred.caches:
            o = theirs.get(c.name)
            if c.grows_with_context and o is not None and (o.cells, o.streams) != (c.cells, c.streams):
                broken.append(f"{c.name}: {c.streams} stream(s) × {c.cells} cells here, {o.streams} × {o.cells} "
                              f"with kv_unified {label}")
    return Formula("d", name, expr, value, exact, _or_unnamed(broken, value, exact))


def _or_unnamed(broken: list[str], value: int, exact: int) -> tuple[str, ...]:
    if value != exact and not broken:
        return ("the caches differ from this formula in a way not named here",)
    return tuple(broken)


def explain(model: ModelInfo, s: KVSettings) -> Explanation:
    """The KV arithmetic of ``predict(model, s)``, step by step, with the common formulas beside it.

    GgufprofError for what predict refuses (as ``estimate``), and when the steps do not add up to the
    prediction (a defect of this view, never a silent wrong answer)."""
    pred = predict(model, s)
    r = resolved(model, s)
    steps = _steps(model, pred)
    for st in steps:
        if st.product != st.bytes:
            raise GgufprofError(f"explain: cache {st.cache} layers {layer_ranges(st.layers)}: {st.product:,} B by the "
                                f"arithmetic, {st.bytes:,} B in the prediction's tensors")
    kv = sum(st.bytes for st in steps if st.grows_with_context)
    state = sum(st.bytes for st in steps if not st.grows_with_context)
    if (kv, state) != (pred.kv_bytes, pred.recurrent_bytes):
        raise GgufprofError(f"explain: the steps add up to {kv:,} + {state:,} B, the prediction is "
                            f"{pred.kv_bytes:,} + {pred.recurrent_bytes:,} B")
    facts = _Facts(model, pred, steps, r.n_ctx_requested, r.n_ctx_padded)
    formulas: tuple[Formula, ...] = ()
    notes = []
    if not pred.caches:
        notes.append("llama.cpp creates no KV cache and no state for this model: nothing to explain")
    elif not facts.attention:
        notes.append("nothing here grows with the context, so no formula in the context size applies")
    else:
        formulas = (_formula_a(facts, kv), _formula_b(facts, kv), _formula_c(model, facts, kv),
                    _formula_d(model, pred, kv))
    if facts.attention and state:
        notes.append("the formulas below are about the KV cache: the recurrent state has none in the context size")
    return Explanation(s, pred.kind, r.n_ctx_requested, r.n_ctx_padded, pred.n_ctx, pred.n_ctx_seq, pred.n_ubatch,
                       _context_note(pred, r.n_ctx_requested, r.n_ctx_padded), tuple(steps), kv, state, formulas,
                       tuple(notes))
