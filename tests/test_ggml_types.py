"""ggml_types.nbytes against ggml's own ggml_nbytes(), called in libggml-base."""

import ctypes

import pytest

from ggufprof.model import ggml_types
from ggufprof.model.gguf_reader import ggml_library


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


@pytest.fixture(scope="module")
def ggml():
    lib = ctypes.CDLL(str(ggml_library("ggml-base")))
    lib.ggml_init.argtypes, lib.ggml_init.restype = [_InitParams], ctypes.c_void_p
    lib.ggml_new_tensor_3d.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
    lib.ggml_new_tensor_3d.restype = ctypes.c_void_p
    lib.ggml_nbytes.argtypes, lib.ggml_nbytes.restype = [ctypes.c_void_p], ctypes.c_size_t
    lib.ggml_blck_size.argtypes, lib.ggml_blck_size.restype = [ctypes.c_int], ctypes.c_int64
    lib.ggml_type_size.argtypes, lib.ggml_type_size.restype = [ctypes.c_int], ctypes.c_size_t
    lib.ggml_free.argtypes = [ctypes.c_void_p]
    ctx = lib.ggml_init(_InitParams(1 << 20, None, True))
    yield lib, ctx
    lib.ggml_free(ctx)


@pytest.mark.parametrize("t", list(ggml_types.BY_ID.values()), ids=lambda t: t.name)
def test_block_layout_matches_ggml(ggml, t):
    lib, _ = ggml
    assert (t.blck_size, t.type_size) == (lib.ggml_blck_size(t.id), lib.ggml_type_size(t.id))


@pytest.mark.parametrize("name", ggml_types.KV_CACHE_TYPES)
@pytest.mark.parametrize("shape", [(64, 256, 1), (128, 1000, 3), (40, 7, 2), (33, 5, 1), (0, 256, 1)])
def test_nbytes_matches_ggml(ggml, name, shape):
    """Includes rows that are not a multiple of the block size (40, 33): the last row is partial."""
    lib, ctx = ggml
    t = ggml_types.kv_cache_type(name)
    tensor = lib.ggml_new_tensor_3d(ctx, t.id, *shape)
    assert ggml_types.nbytes(t, shape) == lib.ggml_nbytes(tensor)


def test_partial_block_row_by_hand():
    q8 = ggml_types.kv_cache_type("q8_0")
    # 40 values: stride of one whole block (34 B) per row, the last row counts 40*34//32 = 42 B
    assert ggml_types.nbytes(q8, (40, 3)) == 2 * 34 + 42


def test_unsupported_cache_type_names_the_accepted_ones():
    with pytest.raises(ValueError, match="q6_k.*q8_0"):
        ggml_types.kv_cache_type("q6_k")
    assert ggml_types.kv_cache_type("Q8_0").name == "q8_0"
