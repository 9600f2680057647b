"""What ``explain`` prints: the KV arithmetic step by step, then the common formulas, in 80 columns.

Plain lines (wrapped here, not by the terminal) so that the output reads the same in a terminal, a
log or an issue; ``--json`` gives the same steps as data (memory/explain.py's ``to_dict``).
"""

from __future__ import annotations

import textwrap

from ..memory.caches import CACHE_KINDS
from ..memory.create import MEMORY_KINDS
from ..memory.explain import Explanation, Formula, Step, layer_ranges
from ..model import ggml_types
from ..model.model_info import ModelInfo
from ..units import human_bytes

WIDTH = 80


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent if first is None else first, subsequent_indent=indent,
                         break_on_hyphens=False) or [first or indent]


def _row_text(st: Step) -> list[str]:
    out = []
    for r in st.rows:
        t = ggml_types.BY_NAME[r.type]
        blocks = r.width // t.blck_size
        per = (f"{blocks} block{'s' if blocks != 1 else ''} × {t.type_size} B ({t.name}: {t.blck_size} values per block)"
               if t.is_quantized else f"{r.width} values × {t.type_size} B ({t.name})")
        source = "" if r.width_note == f"{r.width} values" else f"{r.width_note} = "
        out += _wrap(f"{r.role} row: {source}{r.width} values; {per} = {r.bytes:,} B", "      ", "   ")
    return out


def step_lines(n: int, st: Step) -> list[str]:
    what = CACHE_KINDS[st.kind].description.split(" (")[0]
    layers = f"layer{'s' if len(st.layers) > 1 else ''} {layer_ranges(st.layers)}"
    out = _wrap(f"{n}. cache {st.cache} ({what}), {layers} ({len(st.layers)} layer{'s' if len(st.layers) > 1 else ''})")
    out += _row_text(st)
    cells = f"cells: {st.cells_note}" if st.streams == 1 else \
        f"cells per stream: {st.cells_note}; {st.streams} streams"
    out += _wrap(cells, "      ", "   ")
    parts = [f"{len(st.layers)} layer{'s' if len(st.layers) > 1 else ''}", f"{st.cells:,} cells"]
    parts += [f"{st.streams} streams"] if st.streams > 1 else []
    parts += [f"{st.row_bytes:,} B"]
    out += _wrap(f"= {' × '.join(parts)} = {st.bytes:,} B ({human_bytes(st.bytes)})", "     ", "   ")
    return out


def formula_lines(f: Formula) -> list[str]:
    head = f"({f.key}) {f.name}"
    if f.bytes is None:
        return _wrap(f"{head}: does not apply ({f.note})", "    ", "")
    verdict = "agrees" if f.bytes == f.exact else f"{f.ratio:.3g}× the exact figure"
    out = _wrap(f"{head}: {f.expression} = {f.bytes:,} B ({human_bytes(f.bytes)}): {verdict}", "    ", "")
    for b in f.broken:
        out += _wrap(b, "      ", "    - ")
    return out


def explain_lines(info: ModelInfo, e: Explanation, defaults_note: str | None = None) -> list[str]:
    s = e.settings
    out = _wrap(f"{info.name} ({info.path.name}, {info.architecture}): the KV cache, step by step")
    out += _wrap(f"settings: {s.cache_type_k}/{s.cache_type_v} · {s.parallel} sequence(s), "
                 f"{'unified' if s.kv_unified else 'one stream per sequence'} · n_ubatch {e.n_ubatch} · "
                 f"flash attention {s.flash_attn}" + (f" · swa_full {'on' if s.swa_full else 'off'}"
                                                      if info.has_swa else ""), "  ")
    if defaults_note:
        out += _wrap(f"unset flags: {defaults_note}", "  ")
    out += _wrap(f"memory: {MEMORY_KINDS[e.memory].description}", "  ")
    if any(st.grows_with_context for st in e.steps):
        out += _wrap(f"context: {e.context_note}", "  ")
    out.append("")
    for n, st in enumerate(e.steps, 1):
        out += step_lines(n, st)
    kv = [st for st in e.steps if st.grows_with_context]
    if kv:
        terms = " + ".join(f"{st.bytes:,}" for st in kv)
        out += _wrap(f"KV cache: {terms} = {e.kv_bytes:,} B ({human_bytes(e.kv_bytes)}), as `estimate` says"
                     if len(kv) > 1 else f"KV cache: {e.kv_bytes:,} B ({human_bytes(e.kv_bytes)}), as `estimate` says")
    if e.recurrent_bytes:
        out += _wrap(f"recurrent state: {e.recurrent_bytes:,} B ({human_bytes(e.recurrent_bytes)}), a fixed size per "
                     "sequence, whatever the context")
    for note in e.notes:
        out += _wrap(note)
    if e.formulas:
        out += ["", *_wrap(f"The formulas people use, against the exact {e.kv_bytes:,} B "
                           f"(ctx {e.n_ctx_requested}, {s.parallel} sequence(s)):")]
        for f in e.formulas:
            out += formula_lines(f)
    return out


def explain_json(info: ModelInfo, e: Explanation) -> dict:
    return {"model": {"path": str(info.path), "name": info.name, "architecture": info.architecture}, **e.to_dict()}
