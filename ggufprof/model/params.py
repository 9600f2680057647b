"""Where a model's parameters are: exact counts per component from the tensor shapes, beside the
closed form people compute from the config (pure).

The closed form ``V×H + L×(4H² + 3·H·F) + V×H`` (vocabulary V, n_embd H, block_count L,
feed_forward_length F) assumes full-width Q, K, V and O, one gated FFN per layer, an output matrix
of its own and nothing else. Real files differ: grouped-query attention has smaller K and V
projections, MLA low-rank ones, MoE models hold every expert (of which ``n_expert_used`` run per
token), many models tie the output to the token embeddings, and norms and biases are not in the
formula at all. So each component is counted from the tensors themselves, grouped by llama.cpp's
tensor names (``LLM_TENSOR_NAMES`` in src/llama-arch.cpp: ``blk.%d.attn_k``, ``blk.%d.ffn_up_exps``,
...), and the difference to the closed form gets its reason.

Counts are plain integers; where they are shown rounded, 1 B params = 10⁹ parameters (never 2³⁰),
while bytes are shown in KiB/MiB/GiB (2¹⁰, 2²⁰, 2³⁰).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .gguf_reader import TensorInfo
from .model_info import ModelInfo

# (key, label) in display order; a key is what --json calls the component
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("embedding", "embedding"),
    ("attn_q", "attention Q"),
    ("attn_k", "attention K"),
    ("attn_v", "attention V"),
    ("attn_qkv", "attention QKV (fused)"),
    ("attn_kv", "attention K/V latent (MLA) or fused"),
    ("attn_o", "attention O"),
    ("attn_other", "attention, other"),
    ("ffn", "FFN (dense)"),
    ("ffn_experts", "FFN, MoE experts"),
    ("ffn_shared", "FFN, shared experts"),
    ("ffn_router", "FFN, router"),  # gate logits, expert biases, kimi-k3's routed projections
    ("recurrent", "recurrent mixer"),
    ("vision", "vision expert (image tokens)"),  # cogvlm's second attention and FFN
    ("norm", "norms"),
    ("bias", "biases"),
    ("output", "output"),
    ("other", "other"),
)
LABELS = dict(COMPONENTS)

LAYER_NAME = re.compile(r"(?:(?:enc|dec)\.)?blk\.(\d+)\.(.+)")
SUFFIXES = ("weight", "bias", "scale", "input_scale", "scales")  # what follows the base name
EXPERT_XID = re.compile(r"ffn_(?:gate|up|down)\.\d+")  # blk.%d.ffn_up.%d: one tensor per expert (old files)

EMBEDDINGS = {"token_embd", "position_embd", "per_layer_token_embd", "token_types"}
BY_BASE = {
    "attn_q": "attn_q", "attn_q_a": "attn_q", "attn_q_b": "attn_q",
    "attn_k": "attn_k", "attn_v": "attn_v", "attn_qkv": "attn_qkv",
    "attn_kv": "attn_kv", "attn_kv_a_mqa": "attn_kv", "attn_kv_b": "attn_kv", "attn_k_b": "attn_kv",
    "attn_v_b": "attn_kv",
    "attn_output": "attn_o", "attn_o": "attn_o", "attn_output_a": "attn_o", "attn_output_b": "attn_o",
    "ffn_gate": "ffn", "ffn_up": "ffn", "ffn_down": "ffn",
    "ffn_gate_inp": "ffn_router", "ffn_gate_tid2eid": "ffn_router", "exp_probs_b": "ffn_router",
    "exp_probs_b_vl": "ffn_router", "ffn_routed_up": "ffn_router", "ffn_routed_down": "ffn_router",
}
RECURRENT_PREFIXES = ("ssm_", "time_mix_", "channel_mix_", "shortconv.")
ATTENTION_PREFIXES = ("attn_", "indexer", "cross_attn_")
NORM_NAMES = {"time_mix_ln"}  # norms whose name does not say "norm"


@dataclass(frozen=True)
class Component:
    """One component's exact count beside the closed form, with why they differ."""

    key: str
    params: int
    bytes: int
    tensors: int
    closed_form: int
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def difference(self) -> int:
        return self.params - self.closed_form

    def to_dict(self) -> dict:
        return {"component": self.key, "label": self.label, "params": self.params, "bytes": self.bytes,
                "tensors": self.tensors, "closed_form": self.closed_form, "difference": self.difference,
                "reasons": list(self.reasons)}


@dataclass(frozen=True)
class ParamsByComponent:
    """Every parameter of a model in exactly one component; ``active`` counts one token's share of the
    MoE experts (None when the file does not say how many experts run)."""

    components: tuple[Component, ...]
    total: int
    total_bytes: int
    closed_form_total: int
    closed_form_expression: str  # the formula with this model's numbers
    tied_output: bool
    moe: bool
    active: int | None
    active_note: str = ""
    notes: tuple[str, ...] = field(default=())

    def get(self, key: str) -> Component | None:
        return next((c for c in self.components if c.key == key), None)

    def to_dict(self) -> dict:
        return {"units": "params: parameters (1 B params = 10^9); bytes: bytes (1 GiB = 2^30)",
                "total": self.total, "total_bytes": self.total_bytes, "closed_form_total": self.closed_form_total,
                "closed_form": self.closed_form_expression, "tied_output": self.tied_output, "moe": self.moe,
                "active_per_token": self.active, "active_note": self.active_note,
                "components": [c.to_dict() for c in self.components]}


@dataclass(frozen=True)
class _Named:
    """A tensor with its name taken apart: layer (None outside the blocks), base name, suffix."""

    tensor: TensorInfo
    layer: int | None
    base: str
    suffix: str


def _split(t: TensorInfo) -> _Named:
    m = LAYER_NAME.fullmatch(t.name)
    layer, rest = (int(m.group(1)), m.group(2)) if m else (None, t.name)
    head, _, tail = rest.rpartition(".")
    if head and tail in SUFFIXES:
        return _Named(t, layer, head, tail)
    return _Named(t, layer, rest, "")


def is_expert(n: _Named) -> bool:
    """A tensor that holds routed experts: ``*_exps`` / ``*_chexps`` (all experts stacked in the last
    dimension) or ``ffn_*.%d`` (one tensor per expert)."""
    return n.layer is not None and ("_exps" in n.base or "_chexps" in n.base or bool(EXPERT_XID.fullmatch(n.base))) \
        and "norm" not in n.base


def component_of(n: _Named) -> str:
    """The component a tensor belongs to, from its llama.cpp name."""
    if n.suffix == "bias":
        return "bias"
    if n.suffix in ("scale", "input_scale", "scales"):
        return "other"  # quantization and activation scales
    if "norm" in n.base or n.base in NORM_NAMES:
        return "norm"
    if n.layer is None:
        return "embedding" if n.base in EMBEDDINGS else "output" if n.base == "output" else "other"
    if is_expert(n):
        return "ffn_experts"
    if "_shexp" in n.base:
        return "ffn_shared"
    if n.base in BY_BASE:
        return BY_BASE[n.base]
    if n.base.startswith(RECURRENT_PREFIXES):
        return "recurrent"
    if n.base.startswith("vis_"):
        return "vision"
    if n.base.startswith(ATTENTION_PREFIXES):
        return "attn_other"
    return "other"


def _expert_active(n: _Named, hp) -> tuple[int, int] | None:
    """(active, total) parameters of one expert tensor for one token: ``min(n_expert_used, E) / E`` of
    its E experts, E being its last dimension (grovemoe's chunk experts run ``min(n_expert_used,
    n_chunk_expert)`` of theirs, src/models/grovemoe.cpp) or, one tensor per expert, n_expert.
    None when the file does not say how many experts run."""
    used = hp.n_expert_used(n.layer) if n.layer < hp.n_layer_all else 0
    if used <= 0:
        return None
    total = n.tensor.n_elements
    if EXPERT_XID.fullmatch(n.base):
        return (total * min(used, hp.n_expert) // hp.n_expert, total) if hp.n_expert else None
    e = n.tensor.shape[-1]
    return total * min(used, e) // e, total


def _active(named: list[_Named], hp, total: int) -> tuple[bool, int | None, str]:
    experts = [n for n in named if is_expert(n)]
    if not experts:
        return False, total, ""
    shares = [_expert_active(n, hp) for n in experts]
    if any(s is None for s in shares):
        return True, None, "the file states no expert_used_count: the share of experts one token runs is unknown"
    active = total - sum(t for _, t in shares) + sum(a for a, _ in shares)
    used = sorted({hp.n_expert_used(il) for il in {n.layer for n in experts}})
    return True, active, (f"{'/'.join(map(str, used))} of {hp.n_expert} experts run per token "
                          "(expert_used_count / expert_count)")


def _layers_with(named: list[_Named], key: str) -> set[int]:
    return {n.layer for n in named if n.layer is not None and component_of(n) == key}


class _Closed:
    """The closed form's numbers for one model (from the metadata only)."""

    def __init__(self, info: ModelInfo):
        hp = info.hparams
        self.V, self.H, self.L, self.F = info.n_vocab, hp.n_embd, hp.n_layer_all, hp.n_ff(0)

    def of(self, key: str) -> int:
        V, H, L, F = self.V, self.H, self.L, self.F
        return {"embedding": V * H, "attn_q": L * H * H, "attn_k": L * H * H, "attn_v": L * H * H,
                "attn_o": L * H * H, "ffn": 3 * L * H * F, "output": V * H}.get(key, 0)

    @property
    def expression(self) -> str:
        V, H, L, F = self.V, self.H, self.L, self.F
        return (f"V×H + L×(4H² + 3·H·F) + V×H with V={V:,}, H={H:,}, L={L}, F={F:,} "
                f"= {V * H:,} + {L}×({4 * H * H:,} + {3 * H * F:,}) + {V * H:,}")


def _widths(info: ModelInfo, per_head) -> str | None:
    """'n_head_kv 2 × head_dim 32 = 64' when the width per layer is not n_embd, None when it is."""
    hp = info.hparams
    shapes = sorted({per_head(il) for il in range(hp.n_layer_all) if per_head(il)[0] > 0})
    bad = [s for s in shapes if s[0] * s[1] != hp.n_embd]
    if not bad:
        return None
    heads, size = bad[0]
    return f"{heads} × head_dim {size} = {heads * size}" + (" on some layers" if len(shapes) > 1 else "") \
        + f", not n_embd {hp.n_embd}"


def _reasons(key: str, info: ModelInfo, named: list[_Named], closed: _Closed) -> tuple[str, ...]:
    """Why a component's exact count is not the closed form's (only asked when they differ)."""
    out: list[str] = []
    if key in ("attn_q", "attn_k", "attn_v", "attn_o"):
        out += _attention_reasons(key, info, named, closed)
    elif key == "ffn":
        out += _ffn_reasons(named, closed)
    elif key == "embedding":
        extra = sorted({n.base for n in named if component_of(n) == key} - {"token_embd"})
        out += [f"also {', '.join(extra)}"] if extra else []
    elif key == "output" and not any(n.base == "output" and n.layer is None for n in named):
        out.append("tied: no output.weight, the output reuses token_embd" if info.hparams.causal_attn
                   else "no output.weight (an encoder: no output layer)")
    if not closed.of(key):
        out.append("not in the closed form")
    return tuple(out) or ("tensor shapes differ from the closed form's",)


def _attention_reasons(key: str, info: ModelInfo, named: list[_Named], closed: _Closed) -> list[str]:
    hp = info.hparams
    out: list[str] = []
    have = _layers_with(named, key)
    bases = {n.base for n in named}
    instead = sorted({n.base for n in named if component_of(n) in ("attn_qkv", "attn_kv")})
    mla = hp.is_mla() or "attn_kv_a_mqa" in bases
    if not have and instead and key != "attn_o":
        out.append(("MLA: projected from the latent by " if mla else "fused: in ") + ", ".join(instead))
    elif len(have) != closed.L:
        out.append(f"in {len(have)} of {closed.L} layers")
    if mla:
        if key == "attn_q" and {"attn_q_a", "attn_q_b"} <= bases:
            out.append("MLA: low-rank Q (attn_q_a, attn_q_b)")
        return out
    head = hp.n_embd_head_v if key in ("attn_v", "attn_o") else hp.n_embd_head_k
    heads = hp.n_head_kv if key in ("attn_k", "attn_v") else hp.n_head
    w = _widths(info, lambda il: (heads(il), head(il)))
    if w:
        grouped = key in ("attn_k", "attn_v") and any(0 < hp.n_head_kv(il) < hp.n_head(il)
                                                       for il in range(hp.n_layer_all))
        out.append(f"{'n_head_kv' if key in ('attn_k', 'attn_v') else 'n_head'} {w}" + (" (GQA)" if grouped else ""))
    if key in ("attn_k", "attn_v") and len({hp.n_head_kv(il) for il in have}) > 1:
        out.append(f"KV heads per layer {[hp.n_head_kv(il) for il in range(hp.n_layer_all)]}")
    return out


def _ffn_reasons(named: list[_Named], closed: _Closed) -> list[str]:
    out = []
    dense = [n for n in named if component_of(n) == "ffn" and n.suffix == "weight"]
    widths = sorted({n.tensor.shape[1] if n.base != "ffn_down" else n.tensor.shape[0]
                     for n in dense if len(n.tensor.shape) >= 2})
    if widths and widths != [closed.F]:
        out.append(f"ffn width {'/'.join(map(str, widths))}, not feed_forward_length {closed.F}")
    if dense and not any(n.base == "ffn_gate" for n in dense):
        out.append("not gated: no ffn_gate (2 matrices, not 3)")
    if any(is_expert(n) for n in named):
        out.append("MoE layers hold experts instead (FFN, MoE experts)")
    return out


def params_by_component(info: ModelInfo) -> ParamsByComponent:
    """Every tensor of the model (every shard) counted in one component, with the closed form beside it."""
    named = [_split(t) for t in info.tensors]
    closed = _Closed(info)
    counts: dict[str, list[int]] = {k: [0, 0, 0] for k, _ in COMPONENTS}
    for n in named:
        c = counts[component_of(n)]
        c[0] += n.tensor.n_elements
        c[1] += n.tensor.n_bytes
        c[2] += 1
    comps = []
    for key, _ in COMPONENTS:
        params, nbytes, ntensors = counts[key]
        cf = closed.of(key)
        if params == 0 and cf == 0:
            continue
        comps.append(Component(key, params, nbytes, ntensors, cf,
                               () if params == cf else _reasons(key, info, named, closed)))
    total = sum(c.params for c in comps)
    moe, active, note = _active(named, info.hparams, total)
    return ParamsByComponent(tuple(comps), total, sum(c.bytes for c in comps), sum(c.closed_form for c in comps),
                             closed.expression, tied_output=counts["output"][0] == 0 and info.hparams.causal_attn,
                             moe=moe, active=active,
                             active_note=note)
