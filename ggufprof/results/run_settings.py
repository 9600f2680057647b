"""One configuration as a record stores it (``settings``): the context settings plus how it is
exercised, and whether llama.cpp can run it at all (pure).

Old records keep loading: :meth:`RunSettings.from_dict` takes the fields a record has and gives the
others their defaults. The defaults here are llama-bench's (``-p 512 -n 128 -r 3``) and the CLI
reads them from this class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import GgufprofError
from ..flags import AUTO
from ..memory.placement import PlacementFlags
from ..memory.predict import resolved, validate
from ..memory.settings import KVSettings
from ..model.model_info import ModelInfo


@dataclass(frozen=True)
class RunSettings:
    """One configuration: the cache settings plus how it is exercised and where the model is placed.

    ``placement`` is every placement flag (memory/placement.py's PlacementFlags: -ngl, -sm, -ts, -mg,
    -dev, --rpc, -ot, -cmoe, -ncmoe, -ncffn, --no-repack, -lm, --no-host); a record's settings hold its fields flat,
    beside the others, so ``n_gpu_layers`` and ``repack`` stay where version-1 records have them."""

    kv: KVSettings
    threads: int
    n_prompt: int = 512
    n_gen: int = 128
    depth: int = 0
    repetitions: int = 3
    offload_kqv: bool = True
    placement: PlacementFlags = field(default_factory=PlacementFlags)

    @property
    def n_gpu_layers(self) -> int:
        return self.placement.n_gpu_layers

    @property
    def repack(self) -> bool:  # llama_model_params.use_extra_bufts: repacked CPU weights (AMX, ...)
        return self.placement.repack

    @property
    def id(self) -> str:
        """The configuration as ``key=value`` parts. A placement flag appears only when it differs from
        llama.cpp's default (as ``repack=0`` does), so the ids of records written before the flag
        existed, which ran at that default, stay what they were."""
        k = self.kv
        return (f"ctk={k.cache_type_k},ctv={k.cache_type_v},c={k.ctx_size},np={k.parallel},"
                f"kvu={int(k.kv_unified)},swa_full={int(k.swa_full)},fa={k.flash_attn},b={k.batch_size},"
                f"ub={k.ubatch_size},t={self.threads},ngl={self.n_gpu_layers},nkvo={int(not self.offload_kqv)},"
                f"pp={self.n_prompt},tg={self.n_gen},d={self.depth},"
                f"r={'auto' if self.repetitions == AUTO else self.repetitions}"
                + ("" if self.repack else ",repack=0") + _placement_id(self.placement))

    def to_dict(self) -> dict:
        d = asdict(self)
        kv = d.pop("kv")
        d.pop("placement")
        return {**kv, **d, **self.placement.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RunSettings":
        """From a record's settings; a field an older record lacks takes its default (for a placement
        flag: llama.cpp's default, the placement every sweep ran at before the flag was a setting)."""
        kv_fields, placement_fields = set(KVSettings.__dataclass_fields__), set(PlacementFlags.__dataclass_fields__)
        kv = KVSettings(**{k: v for k, v in d.items() if k in kv_fields})
        placement = PlacementFlags.from_dict({k: v for k, v in d.items() if k in placement_fields})
        return cls(kv=kv, placement=placement,
                   **{k: v for k, v in d.items() if k not in kv_fields and k not in placement_fields})


# The placement flags besides -ngl and --no-repack (which have their own places in the id), by
# llama.cpp's short names (common/arg.cpp): each value joined by ';' so that the id stays a
# comma-separated key=value list (compare's short_labels splits it so).
PLACEMENT_ID_KEYS = (("split_mode", "sm"), ("tensor_split", "ts"), ("main_gpu", "mg"), ("devices", "dev"), ("rpc", "rpc"),
                 ("overrides", "ot"), ("cpu_moe", "cmoe"), ("n_cpu_moe", "ncmoe"), ("n_cpu_ffn", "ncffn"),
                 ("load_mode", "lm"), ("no_host", "nohost"))


def _placement_id(p: PlacementFlags) -> str:
    default, out = PlacementFlags(), []
    for name, key in PLACEMENT_ID_KEYS:
        v = getattr(p, name)
        if v == getattr(default, name):
            continue
        if name == "tensor_split":
            v = ";".join(f"{x:g}" for x in v)
        elif name == "overrides":
            v = ";".join(f"{pattern}={buft}" for pattern, buft in v)
        elif isinstance(v, tuple):
            v = ";".join(v)
        elif isinstance(v, bool):
            v = int(v)
        out.append(f",{key}={v}")
    return "".join(out)


def settings_id(settings: dict) -> str:
    """The configuration a record's ``settings`` describe, as today's :attr:`RunSettings.id`: a
    setting an older record lacks takes its default (the behaviour before the setting existed), so
    results written by an older ggufprof keep matching today's. GgufprofError for settings this
    version does not know (a newer ggufprof's) or lacks a value for: they cannot be matched safely."""
    known = (set(KVSettings.__dataclass_fields__) | set(RunSettings.__dataclass_fields__)
             | set(PlacementFlags.__dataclass_fields__)) - {"kv", "placement"}
    if unknown := sorted(set(settings) - known):
        raise GgufprofError(f"settings {', '.join(unknown)} are unknown to this ggufprof (written by a newer "
                            "version?): upgrade ggufprof to compare these results")
    try:
        return RunSettings.from_dict(settings).id
    except TypeError as e:
        raise GgufprofError(f"settings cannot be read: {e}") from None


def skip_reason(model: ModelInfo, rs: RunSettings) -> str | None:
    """Why llama.cpp would refuse this configuration (a memory we cannot predict is still run)."""
    try:
        validate(model, rs.kv)
    except GgufprofError as e:
        return str(e)
    n_ctx_seq = resolved(model, rs.kv).n_ctx_seq
    need = rs.depth + max(rs.n_prompt, rs.n_gen)
    if need > n_ctx_seq:
        return (f"depth {rs.depth} + max(n_prompt {rs.n_prompt}, n_gen {rs.n_gen}) = {need} tokens do not fit "
                f"in one sequence's {n_ctx_seq} cells")
    return None
