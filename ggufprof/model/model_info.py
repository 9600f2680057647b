"""A model file as ggufprof sees it: its header facts and hyper-parameters as llama.cpp reads them.

The hyper-parameters come from :func:`.load.load_hparams` (``load_hparams`` plus the
architecture's ``load_arch_hparams``); this module adds what the file itself says (name, vocabulary,
tensor table, parameter and weight totals) and per-layer views for display.
"""

from __future__ import annotations

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


def read_shards(first: GgufFile) -> list[GgufFile]:
    """Every shard of a split model (``split.count`` > 1, as ``llama-gguf-split`` writes them), read
    from the first one's name as llama.cpp finds them (``llama_split_prefix`` / ``llama_split_path``);
    ``[first]`` for a whole model. Metadata lives in the first shard; tensors in all of them."""
    count = first.kv.get("split.count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count <= 1:
        return [first]
    m = SPLIT_NAME.fullmatch(first.path.name)
    no = first.kv.get("split.no", 0)
    if no != 0 or not m or int(m.group(2)) != 1:
        first_name = f"{m.group(1) if m else '<prefix>'}-00001-of-{count:05d}.gguf"
        raise GgufprofError(f"{first.path}: shard {no + 1 if isinstance(no, int) else no} of {count} of a split "
                            f"model: give the first one ({first_name}), as llama.cpp loads it")
    shards = [first]
    for i in range(2, count + 1):
        path = first.path.with_name(f"{m.group(1)}-{i:05d}-of-{count:05d}.gguf")
        if not path.is_file():
            raise GgufprofError(f"{first.path}: shard {i} of {count} is missing: {path.name} (llama.cpp needs every shard)")
        shards.append(read_gguf(path))
    return shards


def model_info_from_gguf(gf: GgufFile) -> ModelInfo:
    shards = read_shards(gf)  # first: a later shard has no hyper-parameters to read
    hp = load_hparams(gf)
    kv = gf.kv
    tensors = tuple(t for shard in shards for t in shard.tensors)
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
