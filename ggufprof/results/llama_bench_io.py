"""llama-bench interop: our records as llama-bench JSONL, and llama-bench JSONL as our records.

Why: llama-bench is what llama.cpp developers compare builds with (scripts/compare-llama-bench.py),
and what users already have numbers from. Exporting lets our sweeps go through their tooling;
importing lets ``ggufprof report`` / ``compare`` put llama-bench numbers beside ours.

The field names and types are llama-bench's own (``test::get_fields()`` and the jsonl printer in
tools/llama-bench/llama-bench.cpp of the vendored llama.cpp). Differences that cannot be hidden:

* llama-bench runs pp and tg as separate tests (pp: ``n_prompt=N, n_gen=0``; tg: ``n_prompt=0,
  n_gen=N``), each in a context of ``n_prompt + n_gen + n_depth`` tokens with ``swa_full`` off and
  one sequence. We time both in one context of ``ctx_size``. So an export writes two lines per
  record, and an import pairs one pp and one tg line of the same settings into one record with
  ``ctx_size = n_depth + max(n_prompt, n_gen)`` (the larger of the two contexts; each test's own is
  kept as ``measured.pp.n_ctx`` / ``measured.tg.n_ctx``).
* llama-bench has no ``ctx_size``, ``parallel``, ``kv_unified`` or ``swa_full``: configurations
  differing only in those look alike to compare-llama-bench.py (it averages them). Each exported
  line also carries a ``ggufprof`` object (id, settings, model) that llama.cpp's tools ignore and
  our import uses, so export -> import restores the settings exactly.
* We know no llama.cpp build commit (llama-cpp-python does not expose it): ``build_commit`` is
  ``llama-cpp-python-<version>`` unless given. compare-llama-bench.py compares builds by it, so
  give each run its own label (``--build-commit``).
* Imported records carry ``env.source = "llama-bench"`` and no KV, RSS or checks: llama-bench does
  not measure them (schema.validate exempts such records from those requirements).
* An import is all or nothing: a test whose fields have the wrong type (``LINE``), or the settings
  of a newer ggufprof's export, is one error naming the test and the field, and nothing is written
  (a partial import would pair the wrong pp and tg tests, or lose some silently).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import GgufprofError
from ..memory.placement import PlacementFlags
from ..memory.settings import KVSettings
from . import files
from .run_settings import RunSettings
from .schema import (BOOL, COUNT, INT, NUMBERS, RATE, SETTINGS, STR, Block, Kind, ListOf, Record, field_problems,
                     settings_problems, speed_block, validate)

# test::get_fields(), in llama-bench's order; then its jsonl printer adds samples_ns and samples_ts
FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type", "model_size",
    "model_n_params", "n_batch", "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll", "type_k", "type_v",
    "n_gpu_layers", "n_cpu_moe", "split_mode", "main_gpu", "no_kv_offload", "flash_attn", "devices", "tensor_split",
    "tensor_buft_overrides", "load_mode", "lazy_mode", "embeddings", "no_op_offload", "no_host", "repack",
    "fit_target", "fit_min_ctx", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts",
    "stddev_ts",
)
SOURCE = "llama-bench"
FLASH_ATTN_TYPE = {"auto": -1, "off": 0, "on": 1}  # llama_flash_attn_type
FLASH_ATTN_NAME = {v: k for k, v in FLASH_ATTN_TYPE.items()}
RESULTS = ("test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts")
REQUIRED = ("type_k", "type_v", "n_batch", "n_ubatch", "n_threads", "n_prompt", "n_gen", "n_depth", "samples_ns",
            "samples_ts")
TEST_TIME = "%Y-%m-%dT%H:%M:%SZ"  # llama-bench's test_time


def _test_time_ok(v: str) -> bool:
    try:
        dt.datetime.strptime(v, TEST_TIME)
    except ValueError:
        return False
    return True


# The fields of a llama-bench test that an import reads, and what they must hold (schema.Kind).
LINE = {
    **{k: COUNT.not_null() for k in ("n_batch", "n_ubatch", "n_threads", "n_prompt", "n_gen", "n_depth")},
    "type_k": STR.not_null(), "type_v": STR.not_null(),
    "samples_ns": ListOf(Kind("a number of nanoseconds above 0", NUMBERS, 1, 1e16)), "samples_ts": ListOf(RATE),
    "flash_attn": Kind("-1, 0 or 1 (or true/false)", (int, bool), -1, 1), "n_gpu_layers": INT,
    "no_kv_offload": BOOL, "repack": BOOL, "test_time": Kind(f"a time as {TEST_TIME}", (str,), test=_test_time_ok),
    "model_filename": STR, "model_type": STR, "model_size": COUNT, "model_n_params": COUNT, "cpu_info": STR,
    "gpu_info": STR, "backends": STR, "build_commit": STR, "build_number": INT,
    "n_cpu_moe": COUNT, "split_mode": STR, "main_gpu": INT, "devices": STR, "tensor_split": STR,
    "tensor_buft_overrides": STR,
    # what our own export adds (export_lines)
    "ggufprof": Block({"id": STR, "settings": Block(SETTINGS), "model": Block({}), "hostname": STR}, null=True),
}


@dataclass
class ImportSummary:
    records: list[Record]
    lines: int
    ignored_pg: int  # combined prompt+generation (-pg) tests: we time pp and tg apart


def _stdev(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def _model_facts(path: str | None, cache: dict) -> tuple[int, int]:
    """(n_params, weight bytes) as llama_model_n_params / llama_model_size give them, read from
    the GGUF header when the file is still there; (0, 0) otherwise."""
    if not path:
        return 0, 0
    if path not in cache:
        from ..model.model_info import load_model_info

        try:
            info = load_model_info(path)
            cache[path] = (info.n_params, info.weight_bytes)
        except GgufprofError:
            cache[path] = (0, 0)
    return cache[path]


def bench_placement(p: PlacementFlags) -> dict:
    """The placement as llama-bench's test fields print it (tools/llama-bench/llama-bench.cpp,
    test::get_values and devices_to_string): devices joined by '/' ("auto": llama.cpp's choice,
    "none"), -ts as %.2f joined by '/' up to the last non-zero value ("0.00": by free memory), -ot as
    pattern=buffer type joined by ';' ("none"), load_mode by llama_load_mode_name (src/llama.cpp). llama-bench has no -cmoe or -ncffn: their -ot
    patterns (PlacementFlags.all_overrides, after -ot) are listed with the -ot ones; -ncmoe has its field."""
    ts = list(p.tensor_split)
    while ts and not ts[-1]:
        ts.pop()
    ot = dataclasses.replace(p, n_cpu_moe=0).all_overrides()
    return {"n_gpu_layers": p.n_gpu_layers, "n_cpu_moe": p.n_cpu_moe, "split_mode": p.split_mode,
            "main_gpu": p.main_gpu, "devices": "/".join(p.devices) or "auto",
            "tensor_split": "/".join(f"{x:.2f}" for x in ts) or "0.00",
            "tensor_buft_overrides": ";".join(f"{pat}={buft}" for pat, buft in ot) or "none", "repack": p.repack,
            "load_mode": p.load_mode, "no_host": p.no_host}  # llama_load_mode_name's names, as -lm's


def _placement_of(line: dict) -> PlacementFlags:
    """The placement of a llama-bench test line (bench_placement's fields read back; -cmoe and -ncffn
    come back as the -ot patterns they are)."""
    ts = tuple(float(x) for x in line.get("tensor_split", "0.00").split("/"))
    devices = line.get("devices", "auto")
    ot = line.get("tensor_buft_overrides", "none")
    return PlacementFlags(
        n_gpu_layers=line.get("n_gpu_layers", -1), split_mode=line.get("split_mode", "layer"),
        tensor_split=ts if any(ts) else (), main_gpu=line.get("main_gpu", 0),
        devices=() if devices == "auto" else tuple(devices.split("/")),
        overrides=() if ot == "none" else tuple(tuple(x.rpartition("=")[::2]) for x in ot.split(";")),
        n_cpu_moe=line.get("n_cpu_moe", 0), repack=bool(line.get("repack", True)),
        load_mode=line.get("load_mode", "auto"), no_host=bool(line.get("no_host", False)))


def _test_time(started_at: str | None) -> str:
    if not started_at:
        return ""
    t = dt.datetime.fromisoformat(started_at).astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def export_lines(records: list[Record], build_commit: str | None = None) -> list[dict]:
    """Two llama-bench lines (pp, tg) per ok record with timed samples."""
    out, cache = [], {}
    for rec in records:
        if rec.status != "ok":
            continue
        s, env, model = RunSettings.from_dict(rec.settings).to_dict(), rec.env, rec.model  # v1: defaults filled
        n_params, weight_bytes = _model_facts(model.get("path"), cache)
        gpus = (env.get("gpu") or {}).get("gpus") or []
        common = {
            "build_commit": build_commit or env.get("build_commit") or f"llama-cpp-python-{env.get('llama_cpp_python', 'unknown')}",
            "build_number": env.get("build_number", 0), "cpu_info": env.get("cpu", ""), "gpu_info": ", ".join(gpus),
            "backends": env.get("backends") or ("CUDA" if "CUDA" in (env.get("llama_cpp_system_info") or "") else "CPU"),
            "model_filename": model.get("path", ""), "model_type": model.get("name") or model.get("architecture", ""),
            "model_size": weight_bytes or model.get("weight_bytes", 0), "model_n_params": n_params or model.get("n_params", 0),
            "n_batch": s["batch_size"], "n_ubatch": s["ubatch_size"], "n_threads": s["threads"], "cpu_mask": "0x0",
            "cpu_strict": False, "poll": 50, "type_k": s["cache_type_k"], "type_v": s["cache_type_v"],
            **bench_placement(PlacementFlags.from_dict({k: s[k] for k in PlacementFlags.__dataclass_fields__})),
            "no_kv_offload": not s["offload_kqv"], "flash_attn": FLASH_ATTN_TYPE[s["flash_attn"]],
            "lazy_mode": "auto", "embeddings": False, "no_op_offload": 0,
            "fit_target": 0, "fit_min_ctx": 0,
        }
        for test in ("pp", "tg"):
            m = rec.measured.get(test) or {}
            ts, secs = m.get("samples_tps") or [], m.get("samples_s") or []
            if not ts:
                continue
            ns = [round(x * 1e9) for x in secs]
            line = dict(common, n_prompt=s["n_prompt"] if test == "pp" else 0, n_gen=s["n_gen"] if test == "tg" else 0,
                        n_depth=s["depth"], test_time=_test_time(rec.started_at), avg_ns=sum(ns) // len(ns),
                        stddev_ns=int(_stdev(ns)), avg_ts=statistics.fmean(ts), stddev_ts=_stdev(ts))
            line = {f: line[f] for f in FIELDS}
            line.update(samples_ns=ns, samples_ts=list(ts),
                        ggufprof={"id": rec.id, "settings": s, "model": model, "hostname": env.get("hostname")})
            out.append(line)
    return out


def write_export(records: list[Record], output: Path | None, build_commit: str | None = None) -> str:
    text = "".join(json.dumps(line) + "\n" for line in export_lines(records, build_commit))
    if output:
        files.write_file(output, text)
    return text


def read_llama_bench(path: Path) -> list[dict]:
    """The tests of a llama-bench ``-o jsonl`` file (``-o json``, one array, is read too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise GgufprofError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise GgufprofError(f"{path}: not llama-bench JSONL (not UTF-8: {e.reason} at byte {e.start})") from None
    try:
        if text.lstrip().startswith("["):
            lines = json.loads(text)
        else:
            lines = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    except json.JSONDecodeError as e:
        raise GgufprofError(f"{path}: not llama-bench JSONL: {e}") from None
    if not isinstance(lines, list):
        raise GgufprofError(f"{path}: not llama-bench JSON (a JSON {type(lines).__name__}, not a list of tests)")
    for n, line in enumerate(lines, 1):
        missing = [f for f in REQUIRED if not isinstance(line, dict) or f not in line]
        if missing:
            raise GgufprofError(f"{path}: test {n} is not a llama-bench result: missing {', '.join(missing)}")
        bad = field_problems(line, LINE)
        settings = (line.get("ggufprof") or {}).get("settings")
        bad += [f"ggufprof.{p}" for p in settings_problems(settings)] if settings and not bad else []
        if bad:
            raise GgufprofError(f"{path}: test {n}: {'; '.join(bad[:3])}")
    return lines


def _speed(line: dict | None) -> dict:
    if line is None:
        return speed_block(0, [], [])
    block = speed_block(line["n_prompt"] + line["n_gen"], [x / 1e9 for x in line["samples_ns"]],
                        [float(x) for x in line["samples_ts"]])
    block["n_ctx"] = line["n_prompt"] + line["n_gen"] + line["n_depth"]
    return block


def _record(pp: dict | None, tg: dict | None, where: str) -> Record:
    first = pp or tg
    extra = first.get("ggufprof") or {}
    if extra.get("settings"):
        settings = dict(extra["settings"])
    else:
        n_prompt, n_gen, depth = (pp or {}).get("n_prompt", 0), (tg or {}).get("n_gen", 0), first["n_depth"]
        kv = KVSettings(depth + max(n_prompt, n_gen), first["type_k"], first["type_v"], 1, False, False,
                        first["n_batch"], first["n_ubatch"], FLASH_ATTN_NAME.get(first.get("flash_attn", -1), "auto"))
        try:
            kv.validate()
        except GgufprofError as e:
            raise GgufprofError(f"{where}: {e}") from None
        reps = max(len(x["samples_ts"]) for x in (pp, tg) if x)
        settings = RunSettings(kv, first["n_threads"], n_prompt, n_gen, depth, reps, not first.get("no_kv_offload", False),
                               _placement_of(first)).to_dict()
    model = extra.get("model") or {"path": first.get("model_filename"), "name": first.get("model_type"),
                                   "weight_bytes": first.get("model_size"), "n_params": first.get("model_n_params")}
    env = {"source": SOURCE, "cpu": first.get("cpu_info"), "gpu_info": first.get("gpu_info"),
           "backends": first.get("backends"), "build_commit": first.get("build_commit"),
           "build_number": first.get("build_number")}
    if extra.get("hostname"):
        env["hostname"] = extra["hostname"]
    t = first.get("test_time")
    started = dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).isoformat() if t else None
    return Record(id=RunSettings.from_dict(settings).id, status="ok", settings=settings, model=model, env=env,
                  measured={"pp": _speed(pp), "tg": _speed(tg)}, started_at=started)


def import_llama_bench(path: Path) -> ImportSummary:
    """Records from llama-bench tests: one pp and one tg test of the same settings make one record;
    any other pp or tg test stands alone; combined -pg tests are counted and left out."""
    lines = read_llama_bench(path)
    groups: dict[str, list[dict]] = {}
    for line in lines:
        extra = line.get("ggufprof") or {}
        key = extra.get("id") or json.dumps({k: v for k, v in line.items()
                                             if k not in RESULTS and k not in ("n_prompt", "n_gen")}, sort_keys=True)
        groups.setdefault(key, []).append(line)
    records, ignored = [], 0
    for n, group in enumerate(groups.values(), 1):
        pps = [x for x in group if x["n_prompt"] > 0 and x["n_gen"] == 0]
        tgs = [x for x in group if x["n_prompt"] == 0 and x["n_gen"] > 0]
        ignored += sum(x["n_prompt"] > 0 and x["n_gen"] > 0 for x in group)
        where = f"{path} (settings group {n})"
        if len(pps) == 1 and len(tgs) == 1:
            records.append(_record(pps[0], tgs[0], where))
        else:
            records += [_record(x, None, where) for x in pps] + [_record(None, x, where) for x in tgs]
    for rec in records:
        problems = validate(rec.to_dict())
        if problems:
            raise GgufprofError(f"{path}: imported record {rec.id} does not follow the schema: {'; '.join(problems)}")
    return ImportSummary(records, len(lines), ignored)


def write_records(records: list[Record], out_dir: Path) -> Path:
    """results.jsonl (+ results.csv) in ``out_dir``, as a sweep writes them; an existing file is
    kept as a backup (results.jsonl.<time>.<n>.bak), as the sweep does."""
    from .store import RESULTS, ResultsLock, rewrite, write_csv

    files.make_dir(out_dir, named=True)
    results = out_dir / RESULTS
    with ResultsLock(out_dir):
        files.check_destination(out_dir / "results.csv")  # refused before results.jsonl is replaced
        rewrite(results, records)
        write_csv(results, out_dir / "results.csv")
    return results
