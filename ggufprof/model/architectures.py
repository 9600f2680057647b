"""Which memory llama.cpp gives each architecture, and where its sliding-window layers are.

Read from ``src/llama-model.cpp`` (``llama_model::create_memory``) and the per-architecture
``load_arch_hparams`` in ``src/models/*.cpp`` of the vendored llama.cpp. Only architectures whose
cache we model exactly are listed; every other one is refused by name rather than given a number
that might be wrong (recurrent, hybrid and MLA caches follow other rules).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchRule:
    """How llama.cpp sets up attention memory for one architecture.

    ``swa_pattern``: the default of ``load_swa_pattern(ml, n)``: with ``dense_first`` False a layer
    is SWA when ``il % n < n - 1`` (the last of every n is full attention), otherwise when
    ``il % n != 0``; a ``sliding_window_pattern`` key in the file (number or per-layer bools) wins.
    ``swa``: "never", "always", or "if_window" (only when ``sliding_window`` is present and > 0).
    """

    swa: str = "never"
    swa_pattern: int = 0
    dense_first: bool = False
    default_n_swa: int = 0
    fixed_n_swa: int = 0  # llama4 overwrites the window with a constant (chunked attention)


# Plain KV cache, no sliding window (models/<arch>.cpp set no swa_type).
_PLAIN = (
    "llama", "deci", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "mistral3", "gemma", "starcoder2",
    "granite", "granitemoe", "stablelm", "gpt2", "internlm2", "command-r", "olmo", "exaone", "smollm3",
    # phi3 reads sliding_window but disables SWA (models/phi3.cpp: "Phi SWA is currently disabled")
    "phi3",
)

ARCHITECTURES: dict[str, ArchRule] = {name: ArchRule() for name in _PLAIN}
ARCHITECTURES.update({
    "gemma2": ArchRule("always", 2, default_n_swa=4096),   # models/gemma2.cpp
    "gemma3": ArchRule("if_window", 6),                    # models/gemma3.cpp
    "cohere2": ArchRule("always", 4),                      # models/cohere2.cpp
    "gpt-oss": ArchRule("always", 2),                      # models/openai-moe.cpp
    "olmo2": ArchRule("if_window", 4),                     # models/olmo2.cpp
    "llama4": ArchRule("unless_zero", 4, fixed_n_swa=8192),  # models/llama4.cpp (chunked)
})

# Architectures llama.cpp runs without a KV cache (create_memory returns nullptr: encoders, diffusion).
NO_CACHE = frozenset({
    "bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert", "eurobert",
    "wavtokenizer-dec", "modern-bert", "gemma-embedding", "dream", "llada", "llada-moe", "rnd1",
})


def swa_layers(rule: ArchRule, n_layer: int, n_swa: int, pattern: object) -> list[bool]:
    """Per-layer SWA flags as ``llama_hparams::set_swa_pattern`` / ``load_swa_pattern`` set them."""
    if isinstance(pattern, list):  # sliding_window_pattern stored as one bool per layer
        flags = [bool(x) for x in pattern[:n_layer]]
        return flags + [False] * (n_layer - len(flags))
    n = int(pattern) if pattern is not None else rule.swa_pattern
    if rule.dense_first:
        return [n == 0 or il % n != 0 for il in range(n_layer)]
    return [n == 0 or il % n < n - 1 for il in range(n_layer)]
