"""Deployment files: how a model will be served and what it may cost, checked before it ships.

    [[deployment]]
    name = "chat"
    model = "models/chat.gguf"      # relative to this file
    ctx_size = 4096
    cache_type_k = "q8_0"
    [deployment.limits]
    max_kv_bytes = "64 MiB"

Keys follow llama.cpp's flags (as ``ggufprof estimate`` and ``sweep``). Validation is strict and
happens before anything runs, because a typo in a CI gate (``cache_typ_k``) must not silently
check the defaults: every error is one line naming the file, the line, the deployment and the key.
tomllib reports no positions for valid TOML, so ``key_lines`` finds each key's line by scanning the
text table by table. Cache settings are validated by ``KVSettings.validate`` (the same rules as
``estimate``), so the messages are llama.cpp's.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path

from ..errors import GgufprofError
from .run_settings import RunSettings, skip_reason
from ..memory.placement import PlacementFlags
from ..memory.predict import validate
from ..flags import parse_count, parse_flash_attn, parse_size, parse_threads, placement_flags
from ..memory.settings import DEFAULT_PROFILE, DEFAULTS, KVSettings, check_profile, with_defaults
from ..model.model_info import ModelInfo, load_model_info
from .quality import QualitySettings

KV_KEYS = ("ctx_size", "cache_type_k", "cache_type_v", "parallel", "kv_unified", "swa_full", "batch_size",
           "ubatch_size", "flash_attn")
KEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "model": str, "defaults": str, "ctx_size": (int, str), "cache_type_k": str, "cache_type_v": str, "parallel": int,
    "kv_unified": bool, "swa_full": bool, "batch_size": int, "ubatch_size": int, "flash_attn": (str, bool),
    "threads": int, "n_gpu_layers": (int, str), "offload_kqv": bool, "repack": bool, "n_prompt": int, "n_gen": int,
    "depth": int, "repetitions": int, "limits": dict,
    "quality_ctx": int, "quality_chunks": int, "quality_text": str,  # how limits.max_kld is measured
    # placement, as llama.cpp's flags (a list or llama.cpp's comma-separated string where the flag takes several)
    "split_mode": str, "tensor_split": (str, list), "main_gpu": int, "device": (str, list), "rpc": (str, list),
    "override_tensor": (str, list), "cpu_moe": bool, "n_cpu_moe": int, "n_cpu_ffn": int,
    "load_mode": str, "no_host": bool,
}
# the placement keys: placement_flags' parameters (flags.py: the one parser of llama.cpp's placement
# flags, named as its long flags) that a deployment takes
PLACEMENT_KEYS = tuple(k for k in signature(placement_flags).parameters if k in KEY_TYPES)
REQUIRED = ("name", "model", "ctx_size")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a safe directory name: no '..', '/', spaces
MINIMUM = {"n_prompt": 0, "n_gen": 0, "depth": 0, "repetitions": 1}
SIZE_LIMITS = ("max_kv_bytes", "max_rss", "max_vram")
SPEED_LIMITS = ("min_pp_tps", "min_tg_tps")
QUALITY_LIMITS = ("max_kld",)  # mean KL divergence against f16/f16, in nats (results/quality.py)
QUALITY_KEYS = ("quality_ctx", "quality_chunks", "quality_text")
@dataclass(frozen=True)
class Limits:
    max_kv_bytes: int | None = None
    max_rss: int | None = None
    max_vram: int | None = None
    min_pp_tps: float | None = None
    min_tg_tps: float | None = None
    max_kld: float | None = None


@dataclass(frozen=True)
class Deployment:
    name: str
    model: Path
    run: RunSettings
    limits: Limits
    line: int  # the [[deployment]] header, for messages
    info: ModelInfo = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    quality: QualitySettings | None = None  # measured with the deployment when limits.max_kld is set


def key_lines(text: str) -> tuple[dict[tuple[int, str, str], int], dict[int, int]]:
    """((deployment index, sub-table, key) -> line, deployment index -> header line); index -1 is the
    top level, sub-table '' the deployment itself or 'limits'. Dotted keys (``limits.max_rss``) count
    as keys of their sub-table."""
    keys: dict[tuple[int, str, str], int] = {}
    headers: dict[int, int] = {}
    idx, sub, where = -1, "", ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("[["):
            where = line[2:].split("]]")[0].strip()
            if where == "deployment":
                idx, sub = idx + 1, ""
                headers[idx] = n
            keys.setdefault((-1, "", where.split(".")[0]), n)
        elif line.startswith("["):
            where = line[1:].split("]")[0].strip()
            sub = where.split(".", 1)[1] if where.startswith("deployment.") else ""
            keys.setdefault((idx, "", sub) if sub else (-1, "", where.split(".")[0]), n)
        elif m := re.match(r"([A-Za-z0-9_.\-]+)\s*=", line):
            parts = m.group(1).split(".")
            at_top = where == "" or not where.startswith("deployment")
            owner = -1 if at_top else idx
            if len(parts) > 1 and not at_top and not sub:
                keys.setdefault((owner, "", parts[0]), n)
                keys.setdefault((owner, parts[0], parts[-1]), n)
            else:
                keys.setdefault((owner, sub, parts[0]), n)
    return keys, headers


class _Context:
    """Turns a problem with one deployment's key into the one-line error, with file and line."""

    def __init__(self, path: Path, lines: dict, headers: dict, idx: int, name: str | None):
        self.path, self.lines, self.headers, self.idx, self.name = path, lines, headers, idx, name

    def line(self, key: str, sub: str = "") -> int:
        return (self.lines.get((self.idx, sub, key)) or (sub and self.lines.get((self.idx, "", sub)))
                or self.headers.get(self.idx, 1))

    def fail(self, key: str, msg: str, sub: str = "", *more: str) -> GgufprofError:
        """The error for ``key`` (and ``more`` keys involved), at ``key``'s line."""
        who = f"deployment '{self.name}'" if self.name else f"deployment #{self.idx + 1}"
        full = ", ".join(f"{sub}.{k}" if sub else k for k in (key, *more))
        msg = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), msg)  # llama.cpp flag -> key
        msg = msg.removeprefix(f"{key} ").removeprefix(f"{key}: ")  # "parallel: parallel must be" -> "parallel: must be"
        return GgufprofError(f"{self.path}:{self.line(key, sub)}: {who}: {full}: {msg}")


def _check_keys(table: dict, allowed: dict | tuple, ctx: _Context, sub: str = "") -> None:
    for key, value in table.items():
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=1)
            raise ctx.fail(key, "unknown key" + (f" (did you mean '{near[0]}'?)" if near else "")
                           + f"; known keys: {', '.join(allowed)}", sub)
        want = allowed[key] if isinstance(allowed, dict) else None
        if want is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise ctx.fail(key, f"expected {'a table' if want is dict else names}, got "
                                f"{type(value).__name__} {value!r:.60}", sub)


def _limits(table: dict, run: RunSettings, ctx: _Context) -> Limits:
    _check_keys(table, SIZE_LIMITS + SPEED_LIMITS + QUALITY_LIMITS, ctx, "limits")
    values: dict = {}
    for key, value in table.items():
        if key in QUALITY_LIMITS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ctx.fail(key, f"expected a mean KL divergence in nats >= 0 (e.g. 0.001), got {value!r}", "limits")
            values[key] = float(value)
        elif key in SIZE_LIMITS:
            try:
                values[key] = parse_size(value, key)
            except GgufprofError as e:
                raise ctx.fail(key, str(e).removeprefix(f"{key}: "), "limits") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ctx.fail(key, f"expected a number of tokens/s > 0, got {value!r}", "limits")
        else:
            values[key] = float(value)
    for key, n, what in (("min_pp_tps", run.n_prompt, "n_prompt"), ("min_tg_tps", run.n_gen, "n_gen")):
        if key in values and n == 0:
            raise ctx.fail(key, f"needs {what} > 0 (no such test is run with {what} = 0)", "limits")
    return Limits(**values)


def _kv_settings(table: dict, info: ModelInfo, ctx: _Context) -> KVSettings:
    given = {k: table[k] for k in KV_KEYS if k in table}
    try:
        profile = check_profile(table.get("defaults", DEFAULT_PROFILE))
    except GgufprofError as e:
        raise ctx.fail("defaults", str(e).removeprefix("--defaults ")) from None
    if isinstance(given.get("ctx_size"), str):  # "8k", as the CLI's -c takes it
        try:
            given["ctx_size"] = parse_count(given["ctx_size"], "ctx_size")
        except GgufprofError as e:
            raise ctx.fail("ctx_size", str(e).removeprefix("ctx_size: ")) from None
    if "flash_attn" in given:  # flash_attn = true / "on" / "1", as llama.cpp's tools take it
        try:
            given["flash_attn"] = parse_flash_attn(given["flash_attn"], "flash_attn")
        except GgufprofError as e:
            raise ctx.fail("flash_attn", str(e).removeprefix("flash_attn: ")) from None
    for key, value in given.items():  # each key alone first, so the error names the right one
        try:
            KVSettings(**{key: value}).validate()
        except GgufprofError as e:
            raise ctx.fail(key, str(e)) from None
    kv = with_defaults(profile, **given)
    try:
        validate(info, kv)
    except GgufprofError as e:
        default = DEFAULTS[profile]

        def still_fails(k: str) -> bool:
            try:
                validate(info, dataclasses.replace(kv, **{k: getattr(default, k)}))
                return False
            except GgufprofError:
                return True
        involved = [k for k in sorted(given, key=ctx.line) if not still_fails(k)] or list(given)
        raise ctx.fail(involved[0], str(e), "", *involved[1:]) from None
    from ..model.ggml_types import kv_cache_type

    return dataclasses.replace(kv, cache_type_k=kv_cache_type(kv.cache_type_k).name,
                               cache_type_v=kv_cache_type(kv.cache_type_v).name)


def _deployment(table: dict, base: Path, ctx: _Context, default_threads: int, measuring: bool) -> Deployment:
    _check_keys(table, KEY_TYPES, ctx)
    for key in REQUIRED:
        if key not in table:
            raise ctx.fail(key, "missing (required)")
    for key, low in MINIMUM.items():
        if key in table and table[key] < low:
            raise ctx.fail(key, f"must be >= {low}, got {table[key]}")
    model = Path(table["model"]).expanduser()
    model = model if model.is_absolute() else base / model
    if not model.is_file():
        raise ctx.fail("model", f"{model}: no such file")
    try:
        info = load_model_info(model)
    except GgufprofError as e:
        raise ctx.fail("model", str(e)) from None
    kv = _kv_settings(table, info, ctx)
    threads = parse_threads(table.get("threads")) or default_threads  # 0: every CPU, as -t 0
    run = RunSettings(kv, threads, table.get("n_prompt", RunSettings.n_prompt),
                      table.get("n_gen", RunSettings.n_gen), table.get("depth", RunSettings.depth),
                      table.get("repetitions", RunSettings.repetitions), table.get("offload_kqv", True),
                      _placement(table, ctx))
    why = skip_reason(info, run) if measuring else None
    if why:
        raise ctx.fail("ctx_size", why)
    limits = _limits(table.get("limits", {}), run, ctx)
    quality = _quality(table, limits, run, info, base, ctx)
    return Deployment(table["name"], model, run, limits, ctx.headers.get(ctx.idx, 1), info, quality)


def _placement(table: dict, ctx: _Context) -> PlacementFlags:
    """The placement keys, read by the CLI's own parser of llama.cpp's flags (flags.placement_flags),
    each key on its own first so that an error names its line; lists stand for llama.cpp's
    comma-separated values (``tensor_split = [3, 1]`` is ``-ts 3,1``)."""
    given: dict[str, object] = {}
    for key in PLACEMENT_KEYS:
        if key not in table:
            continue
        value = table[key]
        if isinstance(value, list) and key != "override_tensor":
            if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
                raise ctx.fail(key, f"expected a list of values, got {value!r}")
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        elif key == "override_tensor":
            value = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in value):
                raise ctx.fail(key, f"expected 'regex=buffer type' strings, got {table[key]!r}")
        try:
            placement_flags(**{key: value})
        except GgufprofError as e:
            raise ctx.fail(key, str(e)) from None
        given[key] = value
    return placement_flags(**given)


def _quality(table: dict, limits: Limits, run: RunSettings, info: ModelInfo, base: Path,
             ctx: _Context) -> QualitySettings | None:
    """How max_kld is measured: the deployment's cache types against f16/f16 with its run settings,
    over ``quality_text`` (relative to the file; default the packaged text) in chunks of
    ``quality_ctx`` tokens (default 2048 capped at n_ctx_train), ``quality_chunks`` of them (default all)."""
    given = [k for k in QUALITY_KEYS if k in table]
    if limits.max_kld is None:
        if given:
            raise ctx.fail(given[0], "only used to measure limits.max_kld, which is not set")
        return None
    from .quality import check_counts, check_text, resolve_ctx

    for key, check in (("quality_ctx", lambda v: (check_counts(v, None), resolve_ctx(v, info.n_ctx_train))),
                       ("quality_chunks", lambda v: check_counts(None, v))):
        if key in table:
            try:
                check(table[key])
            except GgufprofError as e:
                raise ctx.fail(key, re.sub(r"--(quality-ctx|chunks) ?", "", str(e))) from None
    text = None
    if "quality_text" in table:
        text = Path(table["quality_text"]).expanduser()
        text = str(text if text.is_absolute() else base / text)
        try:
            check_text(text)
        except GgufprofError as e:
            raise ctx.fail("quality_text", str(e).removeprefix("--text ")) from None
    kv = run.kv
    return QualitySettings(cache_types=((kv.cache_type_k, kv.cache_type_v),), ctx=table.get("quality_ctx"),
                           chunks=table.get("quality_chunks"), text=text, threads=run.threads,
                           flash_attn=kv.flash_attn, offload_kqv=run.offload_kqv, placement=run.placement)


def load_deployments(path: str | Path, default_threads: int = 1, measuring: bool = True) -> list[Deployment]:
    """Every deployment of a TOML file, validated; GgufprofError (one line, with the line number)
    on the first problem. ``measuring`` also checks that the timed tests fit in the context."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise GgufprofError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise GgufprofError(f"{path}: not UTF-8 text (byte {e.start}): a deployment file is TOML, which is UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        raise GgufprofError(f"{path}:{m.group(1) if m else '?'}: invalid TOML: {e}") from None
    lines, headers = key_lines(text)
    top = _Context(path, lines, headers, -1, None)
    for key in doc:
        if key != "deployment":
            raise GgufprofError(f"{path}:{top.line(key)}: unknown top-level key '{key}' (expected [[deployment]] tables)")
    deps = doc.get("deployment")
    if not isinstance(deps, list) or not deps:
        raise GgufprofError(f"{path}:{top.line('deployment') if deps is not None else 1}: expected one or more "
                            "[[deployment]] tables")
    out: list[Deployment] = []
    for idx, table in enumerate(deps):
        if not isinstance(table, dict):
            raise GgufprofError(f"{path}:{top.line('deployment')}: deployment must be a table ([[deployment]])")
        name = table.get("name") if isinstance(table.get("name"), str) else None
        ctx = _Context(path, lines, headers, idx, name if name is not None and NAME.fullmatch(name) else None)
        if name is not None and not NAME.fullmatch(name):
            raise ctx.fail("name", f"{name!r:.60} is not a name: letters, digits, '_', '.', '-', starting with a "
                                   "letter or digit (it names the deployment's results directory)")
        if name is not None and any(d.name == name for d in out):
            raise ctx.fail("name", f"'{name}' is used twice: names must be unique")
        out.append(_deployment(table, path.parent, ctx, default_threads, measuring))
    return out
