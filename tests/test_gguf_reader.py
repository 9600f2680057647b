"""The ctypes GGUF reader against the gguf package's reader, and its errors on bad files."""

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType

from ggufprof.errors import GgufprofError
from ggufprof.model.gguf_reader import LargeArray, read_gguf

from .conftest import FIXTURE_NAMES, fixture_path


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_matches_gguf_package(name):
    path = fixture_path(name)
    ours = read_gguf(path)
    ref = GGUFReader(path)
    assert set(ours.kv) == {k for k in ref.fields if not k.startswith("GGUF.")}
    for key, field in ref.fields.items():
        if key.startswith("GGUF."):
            continue
        value = ours.kv[key]
        if field.types[0] == GGUFValueType.ARRAY:
            if field.types[-1] == GGUFValueType.STRING:
                assert isinstance(value, LargeArray) and value.n == len(field.data)
            else:
                assert np.allclose(value, field.contents())
        elif field.types[0] == GGUFValueType.STRING:
            assert value == field.contents()
        else:
            assert value == pytest.approx(field.contents())
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
        assert a.shape == tuple(int(x) for x in b.shape)
        assert a.type_id == int(b.tensor_type)
        assert a.n_bytes == int(b.n_bytes)
        assert a.n_elements == int(b.n_elements)


def test_missing_file(tmp_path):
    with pytest.raises(GgufprofError, match="no such file"):
        read_gguf(tmp_path / "absent.gguf")


def test_directory(tmp_path):
    with pytest.raises(GgufprofError, match="not a file"):
        read_gguf(tmp_path)


def test_not_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(GgufprofError, match="not a GGUF file"):
        read_gguf(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(GgufprofError, match="not a GGUF file"):
        read_gguf(p)


@pytest.mark.parametrize("keep", [8, 100, 3000])
def test_truncated_header(tmp_path, keep):
    p = tmp_path / "cut.gguf"
    p.write_bytes(fixture_path("llama-gqa").read_bytes()[:keep])
    with pytest.raises(GgufprofError, match="truncated or corrupt GGUF header"):
        read_gguf(p)


def test_truncated_tensor_data(tmp_path):
    data = fixture_path("llama-gqa").read_bytes()
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[: len(data) - 1000])
    with pytest.raises(GgufprofError, match=f"needs {len(data)} bytes, the file has {len(data) - 1000}"):
        read_gguf(p)
