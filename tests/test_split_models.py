"""Split models (``llama-gguf-split`` shards): read across every shard, and checked as llama.cpp
checks them (src/llama-model-loader.cpp, ``llama_model_loader``'s constructor).

Every bad split is built from copies of fixtures/split/ in a temporary directory, and llama.cpp
itself (its dry run, in a worker) is asked to load the same files: ggufprof refuses exactly what
llama.cpp refuses, with llama.cpp's own message, instead of counting stray shards into the
parameters.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import gguf
import numpy as np
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.errors import GgufprofError
from ggufprof.measure.dry_run import DryRun
from ggufprof.model.model_info import load_model_info

from .conftest import FIXTURES, fixture_path, make_fixtures_module

runner = CliRunner(mix_stderr=False)
SPLIT = FIXTURES / "split" / "llama-gqa-split-00001-of-00003.gguf"
N_TENSORS = 39  # llama-gqa: embeddings, output norm, output, 4 layers x 9


def shard_name(i: int) -> str:
    return SPLIT.name.replace("00001-of", f"{i:05d}-of")


def copy_split(tmp_path: Path) -> list[Path]:
    """The three committed shards, copied: [first, second, third]."""
    return [Path(shutil.copy(SPLIT.parent / shard_name(i), tmp_path / shard_name(i))) for i in (1, 2, 3)]


def llama_cpp_load_error(first: Path) -> str:
    """What llama.cpp says when it loads the model (its dry run, in a worker): '' when it loads."""
    try:
        DryRun(first).close()
    except GgufprofError as e:
        return str(e)
    return ""


def refused_by_both(first: Path) -> tuple[str, str]:
    """``inspect`` gives one Error line (exit 2) and llama.cpp refuses the same files: both messages."""
    r = runner.invoke(app, ["inspect", str(first)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.output, r.stderr
    theirs = llama_cpp_load_error(first)
    assert theirs, "llama.cpp loaded a split that ggufprof refused"
    return lines[0], theirs


def test_split_model_equals_the_whole_file():
    whole, split = load_model_info(fixture_path("llama-gqa")), load_model_info(SPLIT)
    assert split.n_shards == 3 and len(split.tensors) == N_TENSORS
    assert (split.n_params, split.weight_bytes, split.tensor_types) == (whole.n_params, whole.weight_bytes, whole.tensor_types)
    a = json.loads(runner.invoke(app, ["estimate", str(fixture_path("llama-gqa")), "--total", "--json"]).stdout)
    b = json.loads(runner.invoke(app, ["estimate", str(SPLIT), "--total", "--json"]).stdout)
    assert a["total"] == b["total"] and a["caches"] == b["caches"]
    assert json.loads(runner.invoke(app, ["inspect", str(SPLIT), "--json"]).stdout)["n_params"] == whole.n_params
    assert llama_cpp_load_error(SPLIT) == ""


def test_split_model_missing_or_later_shard(tmp_path):
    first, second, third = copy_split(tmp_path)
    third.unlink()
    r = runner.invoke(app, ["inspect", str(first)])
    assert r.exit_code == 2 and "shard 3 of 3 is missing" in r.stderr
    r = runner.invoke(app, ["inspect", str(second)])
    assert r.exit_code == 2 and "illegal split file idx: 1" in r.stderr and f"give the first one, {SPLIT.name}" in r.stderr


def test_swapped_later_shards(tmp_path):
    """Shards 2 and 3 trade names: shard 2's place holds split.no 2."""
    first, second, third = copy_split(tmp_path)
    second.rename(tmp_path / "x")
    third.rename(second)
    (tmp_path / "x").rename(third)
    ours, theirs = refused_by_both(first)
    rule = f"invalid split file idx: 2 (file: {second}), expected 1"
    assert rule in ours and rule in theirs


def test_first_and_second_swapped(tmp_path):
    """The file under the first shard's name is shard 2: llama.cpp must be given the first split."""
    first, second, _ = copy_split(tmp_path)
    first.rename(tmp_path / "x")
    second.rename(first)
    (tmp_path / "x").rename(second)
    ours, theirs = refused_by_both(first)
    rule = f"illegal split file idx: 1 (file: {first}), model must be loaded with the first split"
    assert rule in ours and rule in theirs and "renamed or copied" in ours


def test_duplicated_shard(tmp_path):
    """Shard 2 copied over shard 3: before, its 16 tensors were counted twice (wrong parameter count)."""
    first, second, third = copy_split(tmp_path)
    shutil.copy(second, third)
    ours, theirs = refused_by_both(first)
    rule = f"invalid split file idx: 1 (file: {third}), expected 2"
    assert rule in ours and rule in theirs


def test_shard_of_another_split_model(tmp_path):
    """Shard 2 of the same model split at 14 tensors per shard (split.no 1, as its place wants) holds
    tensors 14-27, two of which shard 1 (0-15) holds too: a tensor is duplicated."""
    make_fixtures_module().make_llama_like(tmp_path / "other.gguf", "llama", "tiny llama GQA", 2, seed=1,
                                           split_max_tensors=14)
    first, second, _ = copy_split(tmp_path)
    shutil.copy(tmp_path / "other-00002-of-00003.gguf", second)
    ours, theirs = refused_by_both(first)
    (name,) = re.findall(r"invalid model: tensor '([^']+)' is duplicated", theirs)
    assert f"invalid model: tensor '{name}' is duplicated" in ours


def _rewrite_shard(src: Path, dst: Path, split_no: int | None, keep: slice = slice(None)) -> None:
    """A later shard written again with gguf's writer: ``split.no`` (None: left out) and some of its tensors."""
    reader = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(str(dst), "llama")
    if split_no is not None:
        w.add_uint16("split.no", split_no)
    w.add_uint16("split.count", 3)
    w.add_int32("split.tensors.count", N_TENSORS)
    for t in reader.tensors[keep]:
        w.add_tensor(t.name, np.array(t.data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_fewer_tensors_than_the_split_states(tmp_path):
    """A third shard with one tensor less: the first shard's split.tensors.count (39) is not what the shards hold."""
    first, _, third = copy_split(tmp_path)
    _rewrite_shard(SPLIT.parent / shard_name(3), third, 2, slice(0, -1))
    ours, theirs = refused_by_both(first)
    rule = f"corrupted model: {N_TENSORS} tensors expected but {N_TENSORS - 1} found"
    assert rule in ours and rule in theirs


def test_shard_without_split_no(tmp_path):
    first, _, third = copy_split(tmp_path)
    _rewrite_shard(SPLIT.parent / shard_name(3), third, None)
    ours, theirs = refused_by_both(first)
    rule = f"missing key split.no in GGUF split {third}"
    assert rule in ours and rule in theirs


def test_first_shard_under_another_name(tmp_path):
    first = Path(shutil.copy(SPLIT, tmp_path / "model.gguf"))
    ours, theirs = refused_by_both(first)
    assert f"invalid split file name: {first}" in ours and f"invalid split file name: {first}" in theirs
