"""Write small header-only GGUF files for metadata edge cases (no tensors, never loaded by llama.cpp)."""

from __future__ import annotations

from pathlib import Path

import gguf


def write_header_only(path: Path, arch: str, **kv) -> Path:
    """kv keys are written as '<arch>.<key>' unless they contain a dot already."""
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in kv.items():
        name = key.replace("__", ".")
        full = name if name.startswith(("general.", "tokenizer.")) else f"{arch}.{name}"
        if isinstance(value, bool):
            w.add_bool(full, value)
        elif isinstance(value, int):
            w.add_uint32(full, value)
        elif isinstance(value, float):
            w.add_float32(full, value)
        elif isinstance(value, str):
            w.add_string(full, value)
        else:
            w.add_array(full, list(value))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def llama_like(path: Path, arch: str = "llama", n_layer: int = 4, **extra) -> Path:
    base = dict(block_count=n_layer, embedding_length=128, context_length=2048,
                attention__head_count=4, attention__head_count_kv=2)
    base.update(extra)
    return write_header_only(path, arch, **base)
