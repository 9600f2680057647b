"""``llama_model::create_memory`` (src/llama-model.cpp): which memory an architecture gets.

The switch, case by case, for the main context (``LLAMA_CONTEXT_TYPE_DEFAULT``; the MTP draft
context is not modelled):

* no memory: encoders and diffusion models (bert & co, wavtokenizer-dec, gemma-embedding, dream,
  llada, llada-moe, rnd1);
* minimax-m3: ``llama_kv_cache_msa``, indexer on the layers past ``n_layer_dense_lead``;
* glm-dsa, deepseek32: ``llama_kv_cache_dsa`` over the trunk layers (glm-dsa's indexer only where
  ``is_indexer_full``);
* glm5-next: ``llama_memory_hybrid_idx`` (KDA recurrent layers, DSA attention layers);
* hy_v4: a plain cache when ``indexer_top_k == 0``, else DSA with indexers on "full" layers;
* dots3note: ``llama_kv_cache_dsa_iswa``;
* deepseek4: ``llama_kv_cache_dsv4`` (dsv4.py);
* dflash with hyper-connections: a uniform-window iSWA cache; otherwise as the default;
* default: recurrent archs get ``llama_memory_recurrent``; hybrid archs a hybrid memory (iSWA
  flavour when the model has SWA, indexer flavour for qwen4exp); everything else a plain
  ``llama_kv_cache`` or, with SWA layers, ``llama_kv_cache_iswa`` -- NextN/MTP layers filtered out
  when the trunk does not attend them, gemma3n/gemma4 reusing lower layers' caches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import GgufprofError
from ..model.hparams import RECURRENT_ARCHS, SWA_NONE, HParams
from .caches import Cache
from .dsv4 import dsv4
from .hybrid import hybrid, hybrid_iswa
from .iswa import iswa
from .kv_cache import kv_cache
from .recurrent import recurrent
from .sparse import dsa, dsa_iswa

# create_memory returns nullptr for these (src/llama-model.cpp).
NO_MEMORY = frozenset({
    "bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert", "eurobert",
    "wavtokenizer-dec", "modern-bert", "gemma-embedding", "dream", "llada", "llada-moe", "rnd1",
})

# llm_arch_is_hybrid (src/llama-arch.cpp); deepseek4 and glm5-next have their own cases above.
HYBRID_ARCHS = frozenset({
    "jamba", "falcon-h1", "plamo2", "granitehybrid", "lfm2", "lfm2moe", "nemotron_h", "nemotron_h_moe",
    "qwen3next", "kimi-linear", "bailingmoe3", "kimi-k3", "glm5-next", "qwen35", "qwen35moe", "qwen4exp",
    "deepseek4", "minimax-01",
})

# Memories we do not model, with the reason (the sweep still measures them).
UNMODELLED = {
    "gemma4-assistant": "gemma4-assistant shares the KV cache of its target model's context "
                        "(ctx_other) and cannot run on its own",
}

# Architectures whose context needs another model's context (llama_context::llama_context).
NEEDS_TARGET = {"gemma4-assistant", "eagle3", "dflash"}


def memory_kind(hp: HParams) -> str:
    """The memory class create_memory picks for this model (for display and the JSON ``kind``)."""
    a = hp.arch
    if a in NO_MEMORY:
        return "none"
    if a == "minimax-m3":
        return "msa"
    if a in ("glm-dsa", "deepseek32"):
        return "dsa"
    if a == "hy_v4":  # a full-attention checkpoint has no indexer: one plain cache, SWA or not
        return "dsa" if hp.indexer_top_k != 0 else "kv"
    if a == "dots3note":
        return "dsa_iswa"
    if a == "deepseek4":
        return "dsv4"
    if a == "glm5-next":
        return "hybrid_idx"
    if a == "dflash" and hp.dsv4_hc_mult > 0:
        return "iswa"
    if a in RECURRENT_ARCHS:
        return "recurrent"
    if a in HYBRID_ARCHS:
        if hp.swa_type != SWA_NONE:
            return "hybrid_iswa"
        return "hybrid_idx" if a == "qwen4exp" else "hybrid"
    return "iswa" if hp.swa_type != SWA_NONE else "kv"


@dataclass(frozen=True)
class MemoryArgs:
    """The context's side of ``create_memory``: cache types and sizes as llama_context resolved them."""

    type_k: str
    type_v: str
    v_trans: bool
    swa_full: bool
    unified: bool
    n_ctx_seq: int
    n_seq_max: int
    n_ubatch: int
    n_rs_seq: int = 0

    @property
    def kv(self) -> dict:
        """The arguments of one ``llama_kv_cache`` (kv_cache.py) and the caches built on it."""
        return dict(type_k=self.type_k, type_v=self.type_v, v_trans=self.v_trans, unified=self.unified,
                    kv_size=self.n_ctx_seq, n_seq_max=self.n_seq_max)

    @property
    def swa(self) -> tuple:
        """The leading arguments of the iSWA builders (iswa, dsa_iswa, hybrid_iswa)."""
        return (self.type_k, self.type_v, self.v_trans, self.swa_full, self.unified, self.n_ctx_seq, self.n_seq_max,
                self.n_ubatch)


@dataclass(frozen=True)
class MemoryKind:
    """One memory class of ``create_memory``: its name (the JSON ``memory``), what it is in words, and
    how its caches are built. A new kind is one module with its builder and one entry below."""

    name: str
    description: str
    build: Callable[[HParams, MemoryArgs], list[Cache]]


def _trunk_filter(hp: HParams):
    """Layers the trunk attends: NextN/MTP layers are filtered out when the model has them."""
    trunk = hp.n_layer()
    return (lambda il: il < trunk) if hp.n_layer_nextn > 0 else None


def _default_filter(hp: HParams):
    """The default branch's filter: the trunk never attends NextN layers (unless a router uses them)."""
    trunk = hp.n_layer()
    if hp.n_layer_nextn > 0 and trunk > 0 and hp.router_layer < 0:
        return lambda il: il < trunk  # noqa: E731
    return None


def _build_kv(hp: HParams, m: MemoryArgs) -> list[Cache]:
    if hp.arch == "hy_v4":  # a full-attention checkpoint has no indexer: one plain cache, SWA or not
        return [kv_cache(hp, "kv", **m.kv)]
    return [kv_cache(hp, "kv", **m.kv, layer_filter=_default_filter(hp))]


def _build_iswa(hp: HParams, m: MemoryArgs) -> list[Cache]:
    if hp.arch == "dflash" and hp.dsv4_hc_mult > 0:  # with hyper-connections: a uniform-window iSWA cache over every layer
        return iswa(hp, *m.swa)
    return iswa(hp, *m.swa, _default_filter(hp))


def _build_dsa(hp: HParams, m: MemoryArgs) -> list[Cache]:
    a, trunk = hp.arch, hp.n_layer()
    if a == "hy_v4":
        return dsa(hp, **m.kv, filter_main=None, filter_idx=hp.is_indexer_full)
    filter_idx = lambda il: il < trunk and (a != "glm-dsa" or hp.is_indexer_full(il))  # noqa: E731
    return dsa(hp, **m.kv, filter_main=_trunk_filter(hp), filter_idx=filter_idx)


def _build_hybrid_idx(hp: HParams, m: MemoryArgs) -> list[Cache]:
    if hp.arch != "glm5-next":
        return _hybrid(hp, "hybrid_idx", m)
    trunk = hp.n_layer()
    return hybrid(hp, **m.kv, n_rs_seq=m.n_rs_seq,
                  filter_attn=lambda il: il < trunk and not hp.is_recr(il),
                  filter_recr=lambda il: il < trunk and hp.is_recr(il),
                  filter_idx=lambda il: il < trunk and not hp.is_recr(il) and hp.is_indexer_full(il),
                  with_indexer=True)


MEMORY_KINDS: dict[str, MemoryKind] = {k.name: k for k in (
    MemoryKind("none", "none: llama.cpp runs it without a KV cache (encoder or diffusion model)", lambda hp, m: []),
    MemoryKind("kv", "one KV cache", _build_kv),
    MemoryKind("iswa", "two KV caches: full attention and sliding window", _build_iswa),
    MemoryKind("recurrent", "recurrent state only: a fixed size per sequence, whatever the context",
               lambda hp, m: [recurrent(hp, m.n_seq_max, m.n_rs_seq)]),
    MemoryKind("hybrid", "KV cache for the attention layers, recurrent state for the others",
               lambda hp, m: _hybrid(hp, "hybrid", m)),
    MemoryKind("hybrid_iswa", "KV caches (full and sliding window) for attention layers, recurrent state for the others",
               lambda hp, m: _hybrid(hp, "hybrid_iswa", m)),
    MemoryKind("hybrid_idx", "KV cache and sparse-attention indexer cache for attention layers, recurrent state for "
               "the others", _build_hybrid_idx),
    MemoryKind("dsa", "latent (MLA) KV cache plus a sparse-attention indexer key cache", _build_dsa),
    MemoryKind("dsa_iswa", "latent (MLA) KV cache with indexer keys, plus a sliding-window cache",
               lambda hp, m: dsa_iswa(hp, *m.swa, _trunk_filter(hp),
                                      lambda il: il < hp.n_layer() and hp.is_indexer_full(il))),
    MemoryKind("msa", "KV cache plus a sparse-attention indexer key cache",
               lambda hp, m: dsa(hp, **m.kv, filter_main=None, filter_idx=lambda il: il >= hp.n_layer_dense_lead)),
    MemoryKind("dsv4", "DeepSeek-V4: window cache, CSA/HCA compressed caches, indexer cache and compressor state",
               lambda hp, m: dsv4(hp, m.type_k, m.type_v, m.v_trans, m.swa_full, m.n_ctx_seq, m.n_seq_max,
                                  m.n_ubatch, m.n_rs_seq)),
)}


def create_memory(hp: HParams, type_k: str, type_v: str, flash_attn: bool, swa_full: bool, unified: bool,
                  n_ctx_seq: int, n_seq_max: int, n_ubatch: int, n_rs_seq: int = 0) -> list[Cache]:
    """The caches of the main context, in the order llama.cpp creates (and logs) them.

    ``flash_attn`` is ``cparams.flash_attn``: requested on or auto (resolved later), so only an
    explicit off transposes V."""
    if hp.arch in UNMODELLED:
        raise GgufprofError(UNMODELLED[hp.arch])
    args = MemoryArgs(type_k, type_v, not flash_attn, swa_full, unified, n_ctx_seq, n_seq_max, n_ubatch, n_rs_seq)
    return MEMORY_KINDS[memory_kind(hp)].build(hp, args)


def _hybrid(hp: HParams, kind: str, m: MemoryArgs) -> list[Cache]:
    """The default branch's hybrid case: each architecture's layer filters."""
    a, trunk = hp.arch, hp.n_layer()
    filter_attn = filter_recr = filter_idx = None
    if a == "falcon-h1":  # attention and SSM side by side in every layer
        filter_attn = filter_recr = lambda il: True  # noqa: E731
    elif a in ("nemotron_h", "nemotron_h_moe"):
        filter_attn = lambda il: not hp.is_recr(il) and hp.n_ff(il) == 0  # noqa: E731
        filter_recr = lambda il: hp.is_recr(il) and hp.n_ff(il) == 0  # noqa: E731
    elif a in ("qwen3next", "qwen35", "qwen35moe", "qwen4exp", "minimax-01"):
        filter_attn = lambda il: il < trunk and not hp.is_recr(il)  # noqa: E731
        filter_recr = lambda il: il < trunk and hp.is_recr(il)  # noqa: E731
        if a == "qwen4exp" and hp.indexer_head_size > 0:
            filter_idx = lambda il: il < trunk and not hp.is_recr(il)  # noqa: E731 -- QSA on dense layers
    if kind == "hybrid_iswa":
        return hybrid_iswa(hp, *m.swa, m.n_rs_seq, filter_attn, filter_recr)
    return hybrid(hp, m.type_k, m.type_v, m.v_trans, m.unified, m.n_ctx_seq, m.n_seq_max, m.n_rs_seq,
                  filter_attn, filter_recr, filter_idx, with_indexer=(kind == "hybrid_idx"))


# What a layer keeps per token or per sequence (inspect's "memory" column).
ATTENTION, SWA, SHARED, RECURRENT, HYBRID, NONE = "attention", "sliding window", "shared", "recurrent", \
    "attention + recurrent", "none"


def layer_memories(hp: HParams) -> list[str]:
    """What each layer of the main model keeps, read off the caches create_memory builds (so the
    layer filters have one home): attention, sliding window, shared (a reused lower layer's cache),
    recurrent, attention + recurrent, or none."""
    if hp.arch in UNMODELLED:
        return ["not modelled"] * hp.n_layer()
    caches = create_memory(hp, "f16", "f16", flash_attn=True, swa_full=True, unified=True,
                           n_ctx_seq=256, n_seq_max=1, n_ubatch=1)
    attn: dict[int, str] = {}
    recr: set[int] = set()
    for c in caches:
        for il in c.layer_ids:
            if c.kind == "recurrent":
                recr.add(il)
            elif c.kind not in ("indexer", "state"):
                attn[il] = SWA if c.kind == "swa" else ATTENTION
    out = []
    for il in range(hp.n_layer()):
        if il in attn and il in recr:
            out.append(HYBRID)
        elif il in attn:
            out.append(attn[il])
        elif il in recr:
            out.append(RECURRENT)
        elif not hp.has_kv(il) and caches:
            out.append(SHARED)
        else:
            out.append(NONE)
    return out
