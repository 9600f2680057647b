"""A model file as ggufprof sees it: its header facts and hyper-parameters as llama.cpp reads them.

The hyper-parameters come from :func:`.load.load_hparams` (``load_hparams`` plus the
architecture's ``load_arch_hparams``); this module adds what the file itself says (name, vocabulary,
tensor table, parameter and weight totals) and per-layer views for display.
"""

from __future__ import annotations

import dataclasses

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import ggml_types
from .gguf_reader import GgufFile, TensorInfo, read_gguf
from ..errors import GgufprofError
from ..units import printable
from .hparams import HParams
from .load import load_hparams
from .remote import Origin

@dataclass(frozen=True)
class ModelInfo:
    path: Path
    architecture: str
    name: str
    hparams: HParams
    n_vocab: int
    n_params: int
    weight_bytes: int
    file_size: int
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type name -> tensor count
    tensors: tuple[TensorInfo, ...] = ()  # of every shard of a split model
    n_shards: int = 1
    origin: Origin | None = None  # a model named by a URL or -hf (model/remote.py); None for a local file

    # --- views of the hyper-parameters, over the main model's layers (NextN layers excluded) ---

    @property
    def n_layer(self) -> int:
        return self.hparams.n_layer()

    @property
    def n_embd(self) -> int:
        return self.hparams.n_embd

    @property
    def n_ctx_train(self) -> int:
        return self.hparams.n_ctx_train

    @property
    def n_head(self) -> list[int]:
        return self.hparams.n_head_arr[: self.n_layer]

    @property
    def n_head_kv(self) -> list[int]:
        return self.hparams.n_head_kv_arr[: self.n_layer]

    @property
    def n_embd_head_k(self) -> int:
        return self.hparams.n_embd_head_k_full

    @property
    def n_embd_head_v(self) -> int:
        return self.hparams.n_embd_head_v_full

    @property
    def n_swa(self) -> int:
        return self.hparams.n_swa if self.has_swa else 0

    @property
    def swa_layers(self) -> list[bool]:
        return [self.hparams.is_swa(il) for il in range(self.n_layer)]

    @property
    def has_swa(self) -> bool:
        return self.hparams.swa_type != "none" and any(self.swa_layers)

    def head_k(self, il: int) -> int:
        return self.hparams.n_embd_head_k(il)

    def head_v(self, il: int) -> int:
        return self.hparams.n_embd_head_v(il)

    def n_embd_k_gqa(self, il: int) -> int:
        return self.hparams.n_embd_k_gqa(il)

    def n_embd_v_gqa(self, il: int) -> int:
        return self.hparams.n_embd_v_gqa(il)

    @property
    def location(self) -> str:
        """Where the model is, for people: its path, or its URL when only its header was fetched."""
        return self.origin.url if self.origin and self.origin.header_only else str(self.path)

    def to_dict(self) -> dict:
        hp = self.hparams
        return {
            "path": self.location,
            **(self.origin.to_dict() if self.origin else {}),
            "architecture": self.architecture,
            "name": self.name,
            "n_layer": self.n_layer,
            "n_layer_nextn": hp.n_layer_nextn,
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_head_kv": self.n_head_kv,
            "n_embd_head_k": self.n_embd_head_k,
            "n_embd_head_v": self.n_embd_head_v,
            "n_embd_head_k_swa": hp.n_embd_head_k_swa,
            "n_embd_head_v_swa": hp.n_embd_head_v_swa,
            "n_swa": self.n_swa,
            "swa_layers": self.swa_layers,
            "n_ctx_train": self.n_ctx_train,
            "n_vocab": self.n_vocab,
            "n_params": self.n_params,
            "weight_bytes": self.weight_bytes,
            "file_size": self.file_size,
            "tensor_types": self.tensor_types,
        }


SPLIT_NAME = re.compile(r"(.+)-(\d{5})-of-(\d{5})\.gguf")  # llama_split_path: "%s-%05d-of-%05d.gguf"
SPLIT_COUNT, SPLIT_NO, SPLIT_TENSORS = "split.count", "split.no", "split.tensors.count"  # LLM_KV_SPLIT_*


def _split_key(gf: GgufFile, key: str, required: bool) -> int | None:
    """A split key as llama.cpp reads it (a uint16 ``split.count`` / ``split.no``, an int
    ``split.tensors.count``); None when absent and not required."""
    value = gf.kv.get(key)
    if value is None:
        if required:
            raise GgufprofError(f"{gf.path}: key not found in model: {key} (llama.cpp requires it in a split model)")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GgufprofError(f"{gf.path}: key {key}: expected an unsigned integer, got {printable(repr(value), 60)}")
    return value


def read_shards(first: GgufFile) -> list[GgufFile]:
    """Every shard of a split model, checked as llama.cpp checks them; ``[first]`` for a whole model.

    The rules and their messages are ``llama_model_loader``'s constructor (src/llama-model-loader.cpp),
    in its order: ``split.count`` > 1 makes a split model (metadata in the first shard, tensors in
    all); the file given must be the first (``split.no`` 0: "illegal split file idx ... model must be
    loaded with the first split") and named ``PREFIX-00001-of-0000N.gguf`` (``llama_split_prefix``:
    "invalid split file name"); the others are found by name (``llama_split_path``); each one's
    ``split.no`` must be present ("missing key split.no in GGUF split") and equal its index
    ("invalid split file idx: I (file: F), expected J"); no tensor name may appear twice in the
    model ("invalid model: tensor 'T' is duplicated"); and the first shard's
    ``split.tensors.count`` must be the number of tensors loaded ("corrupted model: N tensors
    expected but M found"). llama.cpp reads ``split.count`` and ``split.tensors.count`` of the first
    shard only, so the copies in the other shards are not compared either. Swapped, duplicated or
    mixed-in shards are therefore refused here exactly where llama.cpp refuses to load them, instead
    of being counted into the parameters."""
    count = _split_key(first, SPLIT_COUNT, required=False) or 0
    if count <= 1:
        return [first]
    no = _split_key(first, SPLIT_NO, required=True)
    m = SPLIT_NAME.fullmatch(first.path.name)
    first_name = f"{m.group(1) if m else '<prefix>'}-00001-of-{count:05d}.gguf"
    if no != 0:
        hint = ("a later shard under the first one's name: a renamed or copied file" if first.path.name == first_name
                else f"give the first one, {first_name}")
        raise GgufprofError(f"illegal split file idx: {no} (file: {first.path}), model must be loaded with the first "
                            f"split (this file is shard {no + 1} of {count}: {hint})")
    if not m or (int(m.group(2)), int(m.group(3))) != (1, count):
        raise GgufprofError(f"invalid split file name: {first.path} (the first of {count} shards is named "
                            f"PREFIX-00001-of-{count:05d}.gguf, as llama-gguf-split writes it: llama.cpp finds the "
                            "others by that name)")
    shards = [first]
    for idx in range(1, count):
        path = first.path.with_name(f"{m.group(1)}-{idx + 1:05d}-of-{count:05d}.gguf")
        if not path.is_file():
            raise GgufprofError(f"{first.path}: shard {idx + 1} of {count} is missing: {path.name} (llama.cpp needs every shard)")
        shard = read_gguf(path)
        if SPLIT_NO not in shard.kv:
            raise GgufprofError(f"missing key {SPLIT_NO} in GGUF split {path}")
        got = _split_key(shard, SPLIT_NO, required=True)
        if got != idx:
            raise GgufprofError(f"invalid split file idx: {got} (file: {path}), expected {idx} (it is shard {got + 1}, "
                                f"named as shard {idx + 1}: a renamed or copied file)")
        shards.append(shard)
    _check_split_tensors(shards)
    return shards


def _check_split_tensors(shards: list[GgufFile]) -> None:
    """No tensor twice across the shards, and as many as the first shard's ``split.tensors.count``."""
    seen: dict[str, Path] = {}
    for shard in shards:
        for t in shard.tensors:
            if t.name in seen:
                raise GgufprofError(f"invalid model: tensor '{printable(t.name, 200)}' is duplicated (in {shard.path} "
                                    f"and {seen[t.name].name}: shards of different split models)")
            seen[t.name] = shard.path
    expected = _split_key(shards[0], SPLIT_TENSORS, required=True)
    if expected != len(seen):
        raise GgufprofError(f"corrupted model: {expected} tensors expected but {len(seen)} found (the {len(shards)} "
                            f"shards of {shards[0].path}: shards of different split models, or a damaged one)")


def model_info_from_gguf(gf: GgufFile) -> ModelInfo:
    shards = read_shards(gf)  # first: a later shard has no hyper-parameters to read
    hp = load_hparams(gf)
    kv = gf.kv
    tensors = tuple(dataclasses.replace(t, shard=i) if i else t for i, shard in enumerate(shards) for t in shard.tensors)
    tokens = kv.get("tokenizer.ggml.tokens")
    vocab_size = kv.get(f"{hp.arch}.vocab_size", 0)
    n_vocab = len(tokens) if tokens is not None else int(vocab_size if isinstance(vocab_size, int) else 0)
    types = Counter(ggml_types.type_name(t.type_id) for t in tensors)
    return ModelInfo(
        path=gf.path,
        architecture=hp.arch,
        name=printable(str(kv.get("general.name", gf.path.stem))),
        hparams=hp,
        n_vocab=n_vocab,
        n_params=sum(t.n_elements for t in tensors),
        weight_bytes=sum(t.n_bytes for t in tensors),
        file_size=sum(shard.file_size for shard in shards),
        tensor_types=dict(types.most_common()),
        tensors=tensors,
        n_shards=len(shards),
    )


def load_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read ``path`` and derive its hyper-parameters; GgufprofError on anything unusable."""
    return model_info_from_gguf(read_gguf(path))
