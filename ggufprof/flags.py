"""Command-line values as llama.cpp users write them, parsed in one place (pure).

* Token counts take llama.cpp-style suffixes: ``32k`` = 32768, ``1M`` = 1048576 (binary, as
  context sizes are); plain integers otherwise. Floats, ``1e20`` and negative numbers are refused.
* Flash attention takes ``on/off/auto`` and the ``1/0``, ``true/false``, ``enabled/disabled``
  spellings of llama.cpp's tools.
* Lists are comma-separated; repeated values are dropped (``-ct f16,f16,F16`` is one cache type).
* GPU layers: a count, ``all`` or ``-1`` (every layer and the output layer), as ``-ngl`` takes them;
  ``auto`` (llama.cpp's --fit choosing at load) is refused with a pointer to ``ggufprof fit``.
* Sizes: bytes, or a number with a unit: ``64 MiB``, ``1.5 GiB`` (KiB/MiB/GiB: powers of 1024, as
  llama.cpp prints MiB), ``512 KB`` (KB/MB/GB: powers of 1000). Fractions: ``1%`` or ``0.01``.
* Placement (common/arg.cpp's spellings): ``-sm none|layer|row|tensor``, ``-ts 3,1`` (or ``3/1``),
  ``-mg N``, ``-dev RPC0,RPC1`` or ``none``, ``--rpc host:port,...``, ``-ot 'regex=BUFT,...'`` (may be
  repeated), ``-ncmoe N``, ``-cmoe``, ``-ncffn N``, ``-lm auto|none|mmap|mlock|mmap+mlock|dio``,
  ``--no-host``: one :class:`PlacementFlags` (placement_flags). Older llama.cpp's ``--no-mmap`` and
  ``--mlock`` are read as the load mode they meant there (parse_load_mode); commands are written with
  ``-lm``.
* Cache types: ``-ct q8_0`` means K and V both; ``-ct q8_0:q4_0`` a mixed pair; ``-ctk a,b -ctv
  c,d`` the cross product of K and V types, as llama-bench runs them.
"""

from __future__ import annotations

import math
import os
import re
import shlex

from .errors import GgufprofError
from .memory.placement import (LLM_FFN_DENSE_REGEX, LLM_FFN_EXPS_REGEX, LOAD_MODES, NO_DEVICES, SPLIT_MODES,
                               PlacementFlags, ffn_block_regex)
from .memory.settings import DEFAULTS, KVSettings
from .model.ggml_types import kv_cache_type

_COUNT = re.compile(r"(\d+)\s*([kKmM]?)")
_SUFFIX = {"": 1, "k": 1024, "m": 1024 * 1024}
FLASH_ATTN_SPELLINGS = {"on": "on", "1": "on", "true": "on", "enabled": "on", "yes": "on",
                        "off": "off", "0": "off", "false": "off", "disabled": "off", "no": "off", "auto": "auto"}


def unique(values: list) -> list:
    """Values in their first order, each once."""
    return list(dict.fromkeys(values))


def parse_count(text: str | int, flag: str) -> int:
    """A token count: ``4096``, ``32k``, ``1M``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _COUNT.fullmatch(str(text).strip())
    if not m:
        raise GgufprofError(f"{flag}: expected a number of tokens such as 4096 or 32k, got '{text}'")
    return int(m.group(1)) * _SUFFIX[m.group(2).lower()]


def parse_count_list(text: str, flag: str, minimum: int = 0) -> list[int]:
    values = unique([parse_count(s, flag) for s in str(text).split(",") if s.strip()])
    if not values:
        raise GgufprofError(f"{flag}: expected comma-separated numbers, got '{text}'")
    if any(v < minimum for v in values):
        raise GgufprofError(f"{flag}: every value must be >= {minimum}, got '{text}'")
    return values


def parse_flash_attn(text: str | bool, flag: str = "--flash-attn") -> str:
    key = str(text).strip().lower()
    if key not in FLASH_ATTN_SPELLINGS:
        raise GgufprofError(f"{flag}: expected on, off or auto (or 1/0, true/false), got '{text}'")
    return FLASH_ATTN_SPELLINGS[key]


def parse_flash_attn_list(text: str, flag: str = "--flash-attn") -> list[str]:
    values = unique([parse_flash_attn(s, flag) for s in str(text).split(",") if s.strip()])
    if not values:
        raise GgufprofError(f"{flag}: expected on, off or auto, got '{text}'")
    return values


def _type_name(name: str, flag: str) -> str:
    if not name.strip():
        raise GgufprofError(f"{flag}: an empty cache type (write q8_0 for both K and V, or q8_0:q4_0)")
    try:
        return kv_cache_type(name).name
    except ValueError as e:
        raise GgufprofError(f"{flag}: {e}") from None


def parse_cache_types(text: str | None = None, k_list: str | None = None, v_list: str | None = None,
                      flag: str = "--cache-types") -> list[tuple[str, str]]:
    """'f16,q8_0,q8_0:q4_0' -> [(f16, f16), (q8_0, q8_0), (q8_0, q4_0)]; and/or the K x V cross product
    of ``-ctk`` / ``-ctv`` lists (a missing one of the two defaults to f16, as in llama.cpp)."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        k, sep, v = item.partition(":")
        pairs.append((_type_name(k, flag), _type_name(v if sep else k, flag)))
    if k_list is not None or v_list is not None:
        ks = [_type_name(s, "--cache-type-k") for s in (k_list or "f16").split(",")]
        vs = [_type_name(s, "--cache-type-v") for s in (v_list or "f16").split(",")]
        pairs += [(k, v) for k in ks for v in vs]
    pairs = unique(pairs)
    if not pairs:
        raise GgufprofError(f"{flag} is empty")
    return pairs


DEFAULT_CACHE_TYPES = "f16,q8_0,q4_0"  # what sweep, quality and fit compare when no cache type is given
DEFAULT_FIT_MARGIN = 1 << 30  # llama.cpp's --fit-target default on a GPU (1024 MiB, common/common.h); fit keeps it for host memory too


def parse_cache_type_grid(text: str | None, k_list: str | None, v_list: str | None) -> list[tuple[str, str]]:
    """``-ct`` and/or ``-ctk``/``-ctv`` as sweep and quality take them; none given: the default three."""
    if text is None and k_list is None and v_list is None:
        text = DEFAULT_CACHE_TYPES
    return parse_cache_types(text, k_list, v_list)


def parse_int_list(text: str, flag: str, minimum: int = 0) -> list[int]:
    try:
        values = unique([int(s) for s in text.split(",") if s.strip()])
    except ValueError:
        raise GgufprofError(f"{flag}: expected comma-separated integers, got '{text}'") from None
    if not values or any(v < minimum for v in values):
        raise GgufprofError(f"{flag}: every value must be >= {minimum}, got '{text}'")
    return values


ALL_GPU_LAYERS = -1  # llama_model_params.n_gpu_layers < 0: n_layer + 1, every layer and the output (llama_model::n_gpu_layers)


def parse_gpu_layers(text: str | int, flag: str = "--n-gpu-layers") -> int:
    """``-ngl``: ``all``/``-1``/``999`` or a count (common/arg.cpp takes the same spellings)."""
    key = str(text).strip().lower()
    if key == "all":
        return ALL_GPU_LAYERS
    if key == "auto":
        raise GgufprofError(f"{flag} auto: llama.cpp's --fit would choose the layers at load time; give a count or "
                            "'all' (ggufprof fit shows what fits)")
    try:
        n = int(key)
    except ValueError:
        raise GgufprofError(f"{flag}: expected a number of layers or 'all', got '{text}'") from None
    if n < -1:
        raise GgufprofError(f"{flag}: expected a number of layers >= 0, or 'all' (-1), got '{text}'")
    return n


def parse_gpu_layers_list(text: str, flag: str = "--n-gpu-layers") -> list[int]:
    values = unique([parse_gpu_layers(s, flag) for s in str(text).split(",") if s.strip()])
    if not values:
        raise GgufprofError(f"{flag}: expected comma-separated layer counts or 'all', got '{text}'")
    return values


def parse_choice_list(text: str, flag: str, choices: tuple[str, ...]) -> list[str]:
    values = unique([s.strip().lower() for s in text.split(",") if s.strip()])
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise GgufprofError(f"{flag}: '{text}' is not a list of {', '.join(choices)}")
    return values


def on_off_both(text: str, flag: str) -> list[bool]:
    v = text.strip().lower()
    table = {"on": [True], "off": [False], "both": [False, True]}
    if v not in table:
        raise GgufprofError(f"{flag}: expected on, off or both, got '{text}'")
    return table[v]


AUTO = 0  # RunSettings.repetitions value meaning "auto": until the 95 % CI is within the target (results/noise.py)


def parse_repetitions(text: str | int, flag: str = "--repetitions") -> int:
    """A number of timed repetitions >= 1, or ``auto`` (0): until the 95 % CI is within ±3 %."""
    if str(text).strip().lower() == "auto":
        return AUTO
    try:
        n = int(str(text).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise GgufprofError(f"{flag} must be auto or an integer >= 1, got '{text}'")
    return n


def parse_threads(n: int | None) -> int | None:
    """``-t N`` as llama.cpp reads it (common/arg.cpp: ``n_threads <= 0`` becomes
    ``std::thread::hardware_concurrency()``): 0 or less means every logical CPU, not the default;
    None (not given) stays None, for the caller's default (physical cores, as common_params')."""
    if n is None:
        return None
    return n if n >= 1 else (os.cpu_count() or 1)


def parse_seconds(value: float, flag: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise GgufprofError(f"{flag} must be a number of seconds > 0, got {value}")
    return value


SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,  # 8G: GiB, as ls -h and llama.cpp's own sizes
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: object, what: str) -> int:
    """Bytes from an integer or a string such as '64 MiB', '1.5 GiB', '512 KB' (KB/MB/GB: powers of
    1000, KiB/MiB/GiB: powers of 1024, as llama.cpp prints MiB)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise GgufprofError(f"{what} must be >= 0 bytes, got {value}")
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m or m.group(2).lower() not in SIZE_UNITS:
        raise GgufprofError(f"{what}: expected bytes or a size such as '64 MiB' or '2 GiB', got {value!r}")
    return round(float(m.group(1)) * SIZE_UNITS[m.group(2).lower()])


def parse_fraction(text: str | float, flag: str) -> float:
    """'1%' or '0.01' -> 0.01; must be >= 0."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise GgufprofError(f"{flag}: expected a fraction such as 0.01 or a percentage such as 1%, got '{text}'") from None
    if not value >= 0:
        raise GgufprofError(f"{flag} must be >= 0, got '{text}'")
    return value


def command_line(tool: str, model: list[str], s: KVSettings, placement: PlacementFlags | None = None,
                 offload_kqv: bool = True) -> str:
    """The llama.cpp command (``llama-server``, ``llama-cli`` or ``llama-bench``) that creates exactly
    the context of ``s`` at ``placement`` (``model``: the flags naming the model, ``-m PATH``, ``-mu
    URL`` or ``-hf REPO``): every setting that differs from the tool's own defaults (common/common.h;
    llama-server's -np auto = 4 unified slots, tools/server/server.cpp), with llama.cpp's flag names
    (common/arg.cpp), and every placement flag (placement_args, ``-lm`` and ``--no-host`` included;
    ``-ngl`` always, since the tools' default is llama.cpp's fit). ``--fit off``: llama.cpp's fit would otherwise adjust what was left
    unset to the free memory of this machine, and the answer was computed for these settings.
    None: no placement flag at all.

    llama-bench (tools/llama-bench) has no -c: its context is n_prompt + n_gen + n_depth
    (``cmd_params_instance::to_llama_cparams``), so the context is given as ``-p``/``-n``/``-d``
    summing to it; it takes one sequence, ``-ot`` patterns separated by ``;`` (``,`` separates test
    instances there), no --cpu-moe/--n-cpu-ffn (given as their -ot patterns) and no --fit."""
    if tool == "llama-bench":
        return _bench_command_line(model, s, placement, offload_kqv)
    base = DEFAULTS["tools"]
    args = [tool, *(shlex.quote(a) for a in model), "-c", str(s.ctx_size)]
    if (s.cache_type_k, s.cache_type_v) != (base.cache_type_k, base.cache_type_v):
        args += ["-ctk", s.cache_type_k, "-ctv", s.cache_type_v]
    if tool == "llama-server" or s.parallel != base.parallel:
        args += ["-np", str(s.parallel)]  # llama-server's default is auto (4 unified slots): always say it
    if s.kv_unified:
        args += ["-kvu"]
    if s.swa_full:
        args += ["--swa-full"]
    if s.flash_attn != base.flash_attn:
        args += ["-fa", s.flash_attn]
    if s.batch_size != base.batch_size:
        args += ["-b", str(s.batch_size)]
    if s.ubatch_size != base.ubatch_size:
        args += ["-ub", str(s.ubatch_size)]
    if placement is not None:
        args += ["-ngl", ngl_text(placement.n_gpu_layers)] + [shlex.quote(a) for a in placement_args(placement)]
        if not placement.repack:
            args += ["--no-repack"]
    if not offload_kqv:
        args += ["-nkvo"]
    return " ".join(args + ["--fit", "off"])


def ngl_text(n: int) -> str:
    """-ngl as llama.cpp's tools take it: all (every layer and the output) or a count."""
    return "all" if n == ALL_GPU_LAYERS else str(n)


def _bench_command_line(model: list[str], s: KVSettings, placement: PlacementFlags | None, offload_kqv: bool) -> str:
    """llama-bench's spelling of the same context and placement (see command_line)."""
    n_gen = min(128, max(1, s.ctx_size // 4))
    n_prompt = min(512, s.ctx_size - n_gen)
    args = ["llama-bench", *(shlex.quote(a) for a in model), "-p", str(n_prompt), "-n", str(n_gen),
            "-d", str(s.ctx_size - n_prompt - n_gen), "-ctk", s.cache_type_k, "-ctv", s.cache_type_v,
            "-b", str(s.batch_size), "-ub", str(s.ubatch_size), "-fa", {"on": "1", "off": "0"}.get(s.flash_attn, "auto")]
    if placement is not None:
        p = placement
        args += ["-ngl", str(p.n_gpu_layers if p.n_gpu_layers >= 0 else 999)]
        args += _device_args(p, "/")  # llama-bench: '/' between devices, ',' between instances
        extra = list(p.overrides) + ([(LLM_FFN_EXPS_REGEX, "CPU")] if p.cpu_moe else [])
        extra += [(ffn_block_regex(i, LLM_FFN_DENSE_REGEX), "CPU") for i in range(p.n_cpu_ffn)]
        if extra:
            args += ["-ot", shlex.quote(";".join(f"{pat}={buft}" for pat, buft in extra))]
        if p.n_cpu_moe:
            args += ["-ncmoe", str(p.n_cpu_moe)]
        if not p.repack:
            args += ["--repack", "0"]
        if p.load_mode != "auto":
            args += ["-lm", p.load_mode]  # tools/llama-bench: -lm takes the same names
        if p.no_host:
            args += ["--no-host", "1"]
    if not offload_kqv:
        args += ["-nkvo", "1"]
    return " ".join(args)


LLAMA_MAX_DEVICES = 16  # include/llama.h; -ts takes fewer values than this (common/arg.cpp)
_ENDPOINT = re.compile(r"[^\s:,]+:\d{1,5}")


def parse_split_mode(text: str, flag: str = "--split-mode") -> str:
    """``-sm``: none, layer (llama.cpp's default), row or tensor (the last two are refused by place())."""
    key = str(text).strip().lower()
    if key not in SPLIT_MODES:
        raise GgufprofError(f"{flag}: expected one of {', '.join(SPLIT_MODES)}, got '{text}'")
    return key


def parse_tensor_split(text: str, flag: str = "--tensor-split") -> tuple[float, ...]:
    """``-ts 3,1`` (or ``3/1``): proportions per device, split on ``[,/]+`` as common/arg.cpp does."""
    parts = [p.strip() for p in re.split(r"[,/]+", str(text)) if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if not values or any(not math.isfinite(v) or v < 0 for v in values) or not any(values):
        raise GgufprofError(f"{flag}: expected proportions >= 0 such as 3,1, got '{text}'")
    if len(values) >= LLAMA_MAX_DEVICES:
        raise GgufprofError(f"{flag}: got {len(values)} values, llama.cpp takes at most {LLAMA_MAX_DEVICES - 1}")
    return values


def parse_overrides(values: list[str] | None, flag: str = "--override-tensor") -> tuple[tuple[str, str], ...]:
    """``-ot 'regex=BUFFER_TYPE,...'``, each value comma-separated, in the order given (first match
    wins: llama-model-loader.cpp's create_tensor). The regex must compile (llama.cpp's std::regex
    would throw at load); whether the buffer type exists is asked of llama.cpp at placement."""
    out = []
    for value in values or []:
        for item in str(value).split(","):
            pattern, sep, buft = item.partition("=")
            if not sep or not pattern or not buft:
                raise GgufprofError(f"{flag}: expected 'tensor name regex=buffer type' such as 'exps=CPU', got '{item}'")
            try:
                re.compile(pattern)
            except re.error as e:
                raise GgufprofError(f"{flag}: '{pattern}' is not a regular expression ({e})") from None
            out.append((pattern, buft))
    return tuple(out)


def parse_rpc(text: str | None, flag: str = "--rpc") -> tuple[str, ...]:
    """``--rpc host:port,...``: rpc-servers added as offload devices, in this order."""
    if text is None:
        return ()
    servers = tuple(unique([s.strip() for s in str(text).split(",") if s.strip()]))
    bad = [s for s in servers if not _ENDPOINT.fullmatch(s)]
    if not servers or bad:
        raise GgufprofError(f"{flag}: expected host:port of each rpc-server, comma-separated, got '{text}'")
    return servers


def parse_devices(text: str | None, flag: str = "--device") -> tuple[str, ...]:
    """``-dev RPC0,CUDA0`` or ``none`` (no offload); whether each exists is asked of llama.cpp."""
    if text is None:
        return ()
    names = tuple(s.strip() for s in str(text).split(",") if s.strip())
    if not names or (NO_DEVICES in names and names != (NO_DEVICES,)):
        raise GgufprofError(f"{flag}: expected device names such as RPC0,RPC1, or none, got '{text}'")
    return names


def parse_load_mode(text: str | None, no_mmap: bool = False, mlock: bool = False, flag: str = "--load-mode") -> str:
    """``-lm``: auto (llama.cpp's default), none, mmap, mlock, mmap+mlock or dio (common/arg.cpp).
    The spellings of llama.cpp before -lm mean what they did there (use_mmap default on, use_mlock
    default off): ``--no-mmap`` none, ``--mlock`` mmap+mlock (the mapping locked), both mlock (a
    real buffer, locked). Given with -lm, they must agree with it."""
    old = {(True, False): "none", (False, True): "mmap+mlock", (True, True): "mlock"}.get((no_mmap, mlock))
    if text is None:
        return old or "auto"
    key = str(text).strip().lower()
    if key != "auto" and key not in LOAD_MODES:
        raise GgufprofError(f"{flag}: expected one of auto, {', '.join(LOAD_MODES)}, got '{text}'")
    if old is not None and old != key:
        raise GgufprofError(f"{flag} {key} contradicts {' '.join(f for f, on in (('--no-mmap', no_mmap), ('--mlock', mlock)) if on)}"
                            f" (load mode {old}): give one of them")
    return key


def _non_negative(value: int | None, flag: str) -> int:
    if value is None:
        return 0
    if value < 0:
        raise GgufprofError(f"{flag}: expected a number of layers >= 0, got {value}")
    return value


def placement_flags(n_gpu_layers: str | int | None = None, split_mode: str | None = None,
                    tensor_split: str | None = None, main_gpu: int | None = None, device: str | None = None,
                    rpc: str | None = None, override_tensor: list[str] | None = None, cpu_moe: bool = False,
                    n_cpu_moe: int | None = None, n_cpu_ffn: int | None = None, repack: bool = True,
                    load_mode: str | None = None, no_host: bool = False, no_mmap: bool = False,
                    mlock: bool = False) -> PlacementFlags:
    """Every placement flag as the CLI takes it, parsed into the one record the workers get. The
    parameters are llama.cpp's long flags (``device`` for --device, ``override_tensor`` for
    --override-tensor): the CLI's options and check's TOML keys have these names and pass them as they
    are (``no_mmap``/``mlock``: older llama.cpp's spellings of a load mode, parse_load_mode)."""
    return PlacementFlags(
        n_gpu_layers=0 if n_gpu_layers is None else parse_gpu_layers(n_gpu_layers),
        split_mode="layer" if split_mode is None else parse_split_mode(split_mode),
        tensor_split=() if tensor_split is None else parse_tensor_split(tensor_split),
        main_gpu=0 if main_gpu is None else main_gpu,
        devices=parse_devices(device), rpc=parse_rpc(rpc), overrides=parse_overrides(override_tensor),
        cpu_moe=cpu_moe, n_cpu_moe=_non_negative(n_cpu_moe, "--n-cpu-moe"),
        n_cpu_ffn=_non_negative(n_cpu_ffn, "--n-cpu-ffn"), repack=repack,
        load_mode=parse_load_mode(load_mode, no_mmap, mlock), no_host=no_host)


def _device_args(p: PlacementFlags, sep: str) -> list[str]:
    """--rpc, -dev, -sm, -ts and -mg for this placement; ``sep`` joins devices and split values
    (',' in llama-server and llama-cli, '/' in llama-bench, where ',' separates test instances)."""
    args: list[str] = []
    if p.rpc:
        args += ["--rpc", ",".join(p.rpc)]
    if p.devices:
        args += ["-dev", sep.join(p.devices)]
    if p.split_mode != "layer":
        args += ["-sm", p.split_mode]
    if p.tensor_split:
        args += ["-ts", sep.join(f"{v:g}" for v in p.tensor_split)]
    if p.main_gpu:
        args += ["-mg", str(p.main_gpu)]
    return args


def placement_args(p: PlacementFlags) -> list[str]:
    """The llama.cpp flags that give exactly this placement (common/arg.cpp's names), for commands
    ggufprof prints: ``-ot`` entries first, then --cpu-moe, --n-cpu-moe, --n-cpu-ffn (the order of
    PlacementFlags.all_overrides)."""
    args = _device_args(p, ",")
    if p.overrides:
        args += ["-ot", ",".join(f"{pat}={buft}" for pat, buft in p.overrides)]
    if p.cpu_moe:
        args += ["-cmoe"]
    if p.n_cpu_moe:
        args += ["-ncmoe", str(p.n_cpu_moe)]
    if p.n_cpu_ffn:
        args += ["-ncffn", str(p.n_cpu_ffn)]
    return args + _load_args(p)


def placement_words(p: PlacementFlags, chosen_over: PlacementFlags | None = None) -> str:
    """A placement in a few of llama.cpp's words, for tables and next steps (the command to run has
    every flag: placement_args): -ngl, -ts, -cmoe, -ncmoe and -ot. ``chosen_over``: the flags the user
    gave, of which only what a search chose is said -- their -cmoe and -ot entries and their -ts left
    out, and -ngl all when it was already theirs (an empty answer then says -ngl all)."""
    keep = 0 if chosen_over is None else len(chosen_over.overrides)
    ngl = not (chosen_over is not None and p.n_gpu_layers == chosen_over.n_gpu_layers == ALL_GPU_LAYERS)
    ts = any(p.tensor_split) and (chosen_over is None or p.tensor_split != chosen_over.tensor_split)
    words = [f"-ngl {ngl_text(p.n_gpu_layers)}"] if ngl else []
    words += ["-ts " + ",".join(f"{v:g}" for v in p.tensor_split)] if ts else []
    words += ["-cmoe"] if p.cpu_moe and chosen_over is None else []
    words += [f"-ncmoe {p.n_cpu_moe}"] if p.n_cpu_moe else []
    words += ["-ot " + ",".join(f"{pat}={buft}" for pat, buft in p.overrides[keep:])] if p.overrides[keep:] else []
    return " ".join(words) or f"-ngl {ngl_text(ALL_GPU_LAYERS)}"


def _load_args(p: PlacementFlags) -> list[str]:
    """``-lm MODE`` and ``--no-host`` (common/arg.cpp), only when they differ from llama.cpp's defaults."""
    return (["-lm", p.load_mode] if p.load_mode != "auto" else []) + (["--no-host"] if p.no_host else [])
