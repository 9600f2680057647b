"""What a prediction is made of: the tensors of each cache llama.cpp creates, and their bytes.

A :class:`Cache` is one ``llama_kv_cache`` or one ``llama_memory_recurrent`` instance: llama.cpp
logs one ``size = ...`` line for each, plus one ``<device> KV buffer size`` (or ``RS buffer size``)
line per buffer type it allocates. Composite memories (iSWA, hybrid, DSA, ...) are lists of these.
Keeping every tensor with its layer lets the per-device placement and the log check work the same
way for every kind of memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..model import ggml_types

CPU_ALIGNMENT = 32  # TENSOR_ALIGNMENT, the CPU buffer type's alignment (ggml-backend.c)

# How llama.cpp logs a cache: as a llama_kv_cache ("kv"), a llama_memory_recurrent ("rs") or a
# llama_dsv4_comp_state ("state"); results/llama_log.py gives each logged cache one of these kinds.
LOG_KV, LOG_RS, LOG_STATE = "kv", "rs", "state"


@dataclass(frozen=True)
class CacheKind:
    """What kind of memory one cache is: in words, whether it grows with the context, how it is logged."""

    name: str
    description: str
    grows_with_context: bool
    log_kind: str


KV, SWA, MLA, INDEXER, RECURRENT, STATE = "kv", "swa", "mla", "indexer", "recurrent", "state"
CACHE_KINDS: dict[str, CacheKind] = {k.name: k for k in (
    CacheKind(KV, "attention KV cache (grows with the context)", True, LOG_KV),
    CacheKind(SWA, "sliding-window KV cache (capped at the window)", True, LOG_KV),
    CacheKind(MLA, "latent (MLA) K-only cache (grows with the context)", True, LOG_KV),
    CacheKind(INDEXER, "sparse-attention indexer key cache (grows with the context)", True, LOG_KV),
    CacheKind(RECURRENT, "recurrent state (fixed per sequence, independent of the context)", False, LOG_RS),
    CacheKind(STATE, "compressor state (fixed per sequence, independent of the context)", False, LOG_STATE),
)}
# The logged kinds whose bytes grow with the context (a prediction's kv_bytes); the others are state.
CONTEXT_LOG_KINDS = frozenset(k.log_kind for k in CACHE_KINDS.values() if k.grows_with_context)


def pad(x: int, n: int) -> int:
    return (x + n - 1) // n * n


@dataclass(frozen=True)
class CacheTensor:
    layer: int
    role: str  # "k", "v" for a KV cache; "r", "s", "p" for recurrent state
    type: str  # ggml type name
    ne: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return ggml_types.nbytes(ggml_types.BY_NAME[self.type], self.ne)


@dataclass(frozen=True)
class Cache:
    """One llama.cpp cache object and the tensors it allocates."""

    name: str  # unique within a prediction: "kv", "full", "swa", "indexer", "recurrent", ...
    kind: str  # one of CACHE_KINDS
    cells: int  # per stream (kv_size), or recurrent rows per layer (mem_size x (1 + n_rs_seq))
    streams: int
    n_seq_max: int
    logged_layers: int  # the "N layers" llama.cpp prints (the recurrent cache prints n_layer())
    type_k: str  # R type for recurrent state
    type_v: str  # S type for recurrent state
    tensors: tuple[CacheTensor, ...] = field(default=())

    @property
    def layer_ids(self) -> list[int]:
        return sorted({t.layer for t in self.tensors})

    @property
    def layers(self) -> int:
        return len(self.layer_ids)

    def role_bytes(self, *roles: str) -> int:
        return sum(t.nbytes for t in self.tensors if t.role in roles)

    @property
    def k_bytes(self) -> int:
        return self.role_bytes("k", "r")

    @property
    def v_bytes(self) -> int:
        return self.role_bytes("v", "s")

    @property
    def p_bytes(self) -> int:
        return self.role_bytes("p")

    @property
    def bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def buffer_bytes(self) -> int:
        """The CPU buffer: each tensor padded to 32 bytes (ggml_backend_alloc_ctx_tensors_from_buft)."""
        return sum(pad(t.nbytes, CPU_ALIGNMENT) for t in self.tensors)

    @property
    def grows_with_context(self) -> bool:
        """False for fixed-size state per sequence (recurrent or compressor state)."""
        return CACHE_KINDS[self.kind].grows_with_context

    @property
    def log_kind(self) -> str:
        """How llama.cpp logs it: "kv" (llama_kv_cache), "rs" (llama_memory_recurrent) or
        "state" (llama_dsv4_comp_state)."""
        return CACHE_KINDS[self.kind].log_kind

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "cells": self.cells, "streams": self.streams,
            "layers": self.layers, "type_k": self.type_k, "type_v": self.type_v,
            "k_bytes": self.k_bytes, "v_bytes": self.v_bytes, "p_bytes": self.p_bytes,
            "bytes": self.bytes, "buffer_bytes": self.buffer_bytes,
        }


def mib_f32(nbytes: int) -> str:
    """Bytes as llama.cpp prints a ``size =`` line: ``(float)bytes / (1024.0f*1024.0f)``, %.2f."""
    f = struct.unpack("f", struct.pack("f", float(nbytes)))[0]
    q = struct.unpack("f", struct.pack("f", f / 1048576.0))[0]
    return f"{q:.2f}"


def mib_f64(nbytes: int) -> str:
    """Bytes as llama.cpp prints buffer sizes: ``size / 1024.0 / 1024.0`` in double, %.2f."""
    return f"{nbytes / 1024.0 / 1024.0:.2f}"
