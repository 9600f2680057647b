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


def with_u32(src: Path, dst: Path, key: str, value: int) -> Path:
    """A copy of a GGUF file with one uint32 key changed in place (e.g. a real fixture with another
    ``context_length``): the key, its type (GGUF_TYPE_UINT32 = 4) and its old value are found once."""
    import struct

    data = src.read_bytes()
    name = struct.pack("<Q", len(key)) + key.encode()
    at = data.index(name) + len(name)
    if data.count(name) != 1 or struct.unpack_from("<I", data, at)[0] != 4:
        raise ValueError(f"{src}: {key} is not one uint32 key")
    dst.write_bytes(data[:at + 4] + struct.pack("<I", value) + data[at + 8:])
    return dst
