"""ggml tensor types: ids, names and the block layout that decides how many bytes a row takes.

Constants only, copied from ``ggml/include/ggml.h`` (enum ids) and the ``type_traits`` table in
``ggml/src/ggml.c`` (block size, bytes per block) of the llama.cpp that the pinned llama-cpp-python
vendors. A quantized type stores ``blck_size`` values in ``type_size`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GgmlType:
    id: int
    name: str
    blck_size: int
    type_size: int

    @property
    def is_quantized(self) -> bool:
        # ggml_is_quantized() is true for every block type; the plain float/int types have blck_size 1
        return self.blck_size > 1


_TYPES = [
    GgmlType(0, "f32", 1, 4),
    GgmlType(1, "f16", 1, 2),
    GgmlType(2, "q4_0", 32, 18),
    GgmlType(3, "q4_1", 32, 20),
    GgmlType(6, "q5_0", 32, 22),
    GgmlType(7, "q5_1", 32, 24),
    GgmlType(8, "q8_0", 32, 34),
    GgmlType(9, "q8_1", 32, 36),
    GgmlType(10, "q2_K", 256, 84),
    GgmlType(11, "q3_K", 256, 110),
    GgmlType(12, "q4_K", 256, 144),
    GgmlType(13, "q5_K", 256, 176),
    GgmlType(14, "q6_K", 256, 210),
    GgmlType(15, "q8_K", 256, 292),
    GgmlType(16, "iq2_xxs", 256, 66),
    GgmlType(17, "iq2_xs", 256, 74),
    GgmlType(18, "iq3_xxs", 256, 98),
    GgmlType(19, "iq1_s", 256, 50),
    GgmlType(20, "iq4_nl", 32, 18),
    GgmlType(21, "iq3_s", 256, 110),
    GgmlType(22, "iq2_s", 256, 82),
    GgmlType(23, "iq4_xs", 256, 136),
    GgmlType(24, "i8", 1, 1),
    GgmlType(25, "i16", 1, 2),
    GgmlType(26, "i32", 1, 4),
    GgmlType(27, "i64", 1, 8),
    GgmlType(28, "f64", 1, 8),
    GgmlType(29, "iq1_m", 256, 56),
    GgmlType(30, "bf16", 1, 2),
    GgmlType(34, "tq1_0", 256, 54),
    GgmlType(35, "tq2_0", 256, 66),
    GgmlType(39, "mxfp4", 32, 17),
]

BY_ID: dict[int, GgmlType] = {t.id: t for t in _TYPES}
BY_NAME: dict[str, GgmlType] = {t.name.lower(): t for t in _TYPES}

# The cache types llama.cpp's own tools accept for -ctk/-ctv (common/arg.cpp: kv_cache_types).
KV_CACHE_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def type_name(type_id: int) -> str:
    t = BY_ID.get(type_id)
    return t.name if t else f"type{type_id}"


def kv_cache_type(name: str) -> GgmlType:
    """The ggml type for a cache type name, or ValueError naming the ones llama.cpp accepts."""
    key = name.strip().lower()
    if key not in KV_CACHE_TYPES:
        raise ValueError(
            f"unsupported cache type '{name}': llama.cpp accepts {', '.join(KV_CACHE_TYPES)}"
        )
    return BY_NAME[key]


def nbytes(t: GgmlType, ne: tuple[int, ...]) -> int:
    """Bytes of a contiguous tensor of shape ``ne`` (ggml order, ne[0] = row length): ggml_nbytes().

    A row of a block type holds ``ne[0] // blck_size`` whole blocks (the stride ``nb[1]``), but the
    last row only counts ``ne[0] * type_size // blck_size`` bytes: llama.cpp reports exactly this sum,
    which matters when ne[0] is not a multiple of the block size.
    """
    if any(n <= 0 for n in ne):
        return 0
    row = t.type_size * (ne[0] // t.blck_size)  # nb[1]
    if t.blck_size == 1:
        total = t.type_size * ne[0]
    else:
        total = ne[0] * t.type_size // t.blck_size
    stride = row
    for n in ne[1:]:
        total += (n - 1) * stride
        stride *= n
    return total
