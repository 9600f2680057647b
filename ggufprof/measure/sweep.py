"""Run a sweep: one worker process per configuration, results appended as each one ends.

The parent never loads the model itself (as pyperf's manager, it only spawns workers and reads
their JSON back). A worker that dies, is killed or runs past ``timeout`` becomes one ``failed``
record with the tail of its stderr; the sweep goes on. ``results.jsonl`` gets each record the
moment it exists, so an interrupted sweep keeps everything measured, and ``resume`` skips the
configurations already there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from ..errors import ExitCode, GgufprofError
from ..flags import AUTO
from ..memory.footprint import footprint
from ..memory.graph import graph_meta_bytes
from ..memory.placement import OffloadDevice, PlacementFlags, place, select_devices
from ..memory.predict import predict
from ..model.model_info import ModelInfo
from ..model.remote import sha256_file
from ..results.checks import (failed_checks, footprint_check, host_weights_check, kv_mismatches, repack_check,
                               rss_check, vram_check, weights_check)
from ..results.llama_log import LlamaLog, mib_bytes, parse_log
from ..results.noise import record_noise
from ..results.quality import QualitySettings
from ..results.run_settings import RunSettings
from ..results.schema import Record
from ..results import files
from ..results.store import ResultsLock, Unreadable, append_record, check_same_model, read_lines, rewrite, write_csv
from .dry_run import DryRun
from .grid import GridSpec, expand
from .quality import quality_failures, quality_key, sweep_quality
from .workers import run_once


def model_block(model: ModelInfo, sha256: str | None = None) -> dict:
    """What a record says about its model: path, name, architecture, size and sha256 (which decides
    whether two results are of one model file), and where a downloaded model came from. ``sha256``
    is computed when not given."""
    if sha256 is None and model.path.is_file():
        sha256 = sha256_file(model.path)
    return {"path": str(model.path.resolve()), "name": model.name, "architecture": model.architecture,
            "size": model.file_size, "sha256": sha256, **(model.origin.to_dict() if model.origin else {})}



@dataclass
class SweepSummary:
    out_dir: Path
    records: list[Record] = field(default_factory=list)
    resumed: int = 0
    kept_failed: int = 0  # failed records of an earlier run kept by --resume --no-retry-failed
    quality_failures: list[str] = field(default_factory=list)  # --quality: one line per group whose run failed

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def mismatches(self) -> int:
        return sum(r.status == "ok" and bool(failed_checks(r.check)) for r in self.records)

    def exit_code(self, strict: bool = False) -> ExitCode:
        """FAIL when a configuration failed (in this run, or kept by --no-retry-failed), when a quality
        run failed, or (``strict``) when a measurement disagrees with the prediction."""
        bad = self.count("failed") or self.kept_failed or self.quality_failures or (strict and self.mismatches)
        return ExitCode.FAIL if bad else ExitCode.PASS


class Sweep:
    def __init__(self, model: ModelInfo, spec: GridSpec, out_dir: Path, timeout: float = 600,
                 resume: bool = False, on_record: Callable[[Record, int, int], None] | None = None,
                 on_start: Callable[[RunSettings, int, int], None] | None = None, retry_failed: bool = True,
                 quality: QualitySettings | None = None):
        self.model, self.spec, self.out_dir = model, spec, out_dir
        self.quality = quality  # sweep --quality: each ok record gets its cache type's quality block
        self.timeout, self.resume, self.retry_failed = timeout, resume, retry_failed
        self.on_record = on_record or (lambda r, i, n: None)
        self.on_start = on_start or (lambda s, i, n: None)
        self.results = out_dir / "results.jsonl"
        self.logs = out_dir / "logs"
        self.problems: list[str] = []  # unreadable lines of existing results, reported by the CLI
        self._sha256: str | None = None
        self._bufts: dict[PlacementFlags, dict[str, str]] = {}  # _cpu_bufts, asked once per key

    @property
    def sha256(self) -> str | None:
        """The model file's sha256; None for a model described without its file (tests of stored
        results from another machine), which then cannot be checked against the results."""
        header_only = self.model.origin is not None and self.model.origin.header_only  # a stand-in has no weights
        if self._sha256 is None and self.model.path.is_file() and not header_only:
            self._sha256 = sha256_file(self.model.path)
        return self._sha256

    def planned(self) -> list[tuple[RunSettings, str | None]]:
        return expand(self.model, self.spec)

    def _existing(self) -> list[Record | Unreadable]:
        """The lines already in --out (records, and lines this ggufprof cannot read), refused when
        the records are of another model file."""
        if not self.results.exists():
            return []
        lines = list(read_lines(self.results, self.problems))
        if self.sha256 is not None:
            check_same_model([x for x in lines if isinstance(x, Record)], self.sha256, self.model.path, self.out_dir)
        return lines

    def _rewrite(self, lines: list[Record | Unreadable]) -> None:
        """results.jsonl as ``lines``; the lines this ggufprof cannot read stay as they are."""
        rewrite(self.results, lines)
        if kept := sum(isinstance(x, Unreadable) for x in lines):
            self.problems.append(f"{self.results}: {kept} line(s) this ggufprof cannot read were kept as they are")

    def run(self) -> SweepSummary:
        files.make_dir(self.out_dir, named=True)
        files.make_dir(self.logs)
        with ResultsLock(self.out_dir), _terminate_as_interrupt():
            self._refuse_links()
            return self._run_locked()

    def _refuse_links(self) -> None:
        """Every file the sweep will write must be one it may replace: refused before anything is
        measured, not when it is written (a link planted in a results directory from elsewhere)."""
        for path in (self.results, self.out_dir / "results.csv", *self.logs.iterdir()):
            files.check_destination(path)

    def _run_locked(self) -> SweepSummary:
        done: set[str] = set()
        if self.resume:
            existing = self._existing()
            keep = [x for x in existing if not (isinstance(x, Record) and x.status == "failed" and self.retry_failed)]
            if len(keep) < len(existing):  # failed ones are measured again
                self._rewrite(keep)
            records = [x for x in keep if isinstance(x, Record)]
            done = {r.id for r in records}
            kept_failed = sum(r.status == "failed" for r in records)
        else:
            kept_failed = 0
            files.backup(self.results, move=True)
        block = model_block(self.model, self.sha256)
        plan = [(rs, why) for rs, why in self.planned() if rs.id not in done]
        summary = SweepSummary(self.out_dir, resumed=len(done), kept_failed=kept_failed)
        quality = self._quality_blocks(plan)
        summary.quality_failures = quality_failures(quality)
        try:
            for i, (rs, why) in enumerate(plan):
                self.on_start(rs, i, len(plan))
                rec = self._skipped(rs, why) if why else self._run_one(rs, i)
                rec.model = block
                if self.quality is not None and rec.status == "ok":
                    rec.quality = quality.get(quality_key(rs))
                append_record(self.results, rec)
                summary.records.append(rec)
                self.on_record(rec, i, len(plan))
        finally:  # Ctrl-C, SIGTERM or an error: results.csv still matches what was measured
            write_csv(self.results, self.out_dir / "results.csv")
        return summary

    def _quality_blocks(self, plan: list[tuple[RunSettings, str | None]]) -> dict[tuple, dict]:
        """--quality: {quality_key: quality block}, measured before the configurations (one worker
        per group, measure/quality.py) so that each record is written once, complete."""
        if self.quality is None or not any(why is None for _, why in plan):
            return {}
        pairs = {(rs.kv.cache_type_k, rs.kv.cache_type_v) for rs, why in plan if why is None}
        return sweep_quality(self.model.path, plan, self.quality, self.timeout * (len(pairs) + 1), self.logs)

    def _base(self, rs: RunSettings) -> Record:
        rec = Record(id=rs.id, status="ok", settings=rs.to_dict(),
                     started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        try:
            rec.predicted = predict(self.model, rs.kv).to_dict()
        except GgufprofError as e:  # refused settings (the skip reason says so) or a memory not modelled
            rec.predicted = {"unavailable": str(e)}
        return rec

    def _skipped(self, rs: RunSettings, why: str) -> Record:
        rec = self._base(rs)
        rec.status, rec.reason = "skipped", why
        return rec

    def _memory_reason(self, rec: Record) -> str | None:
        """A context this machine cannot hold is skipped before a worker tries and gets killed."""
        if rec.settings.get("n_gpu_layers", 0):
            return None
        need = rec.predicted.get("total_bytes", 0) + self.model.weight_bytes
        avail = psutil.virtual_memory().available
        if need > 0.9 * avail:
            return (f"needs {need / 2**30:.2f} GiB for KV cache and weights, this machine has "
                    f"{avail / 2**30:.2f} GiB available")
        return None

    def _run_one(self, rs: RunSettings, index: int) -> Record:
        rec = self._base(rs)
        why = self._memory_reason(rec)
        if why:
            rec.status, rec.reason = "skipped", why
            return rec
        log_path = self.logs / f"{index:04d}-{hashlib.sha1(rs.id.encode()).hexdigest()[:8]}.log"
        reply = run_once("sweep_worker", {"model_path": str(self.model.path), "settings": rs.to_dict(),
                                          "log_path": str(log_path)}, self.timeout, sigill_hint=rs.repack)
        if reply.timed_out:
            rec.status, rec.reason = "failed", reply.failure
            return rec
        rec.measured["log_file"] = str(log_path.relative_to(self.out_dir)) if log_path.exists() else None
        if not reply.ok:
            rec.status, rec.reason = "failed", reply.failure
            return rec
        result = reply.result
        rec.resolved, rec.env = result["resolved"], result["env"]
        rec.measured.update(result["measured"])
        self._check(rec, rs, parse_log(log_path.read_text()))
        return rec

    def _check(self, rec: Record, rs: RunSettings, log: LlamaLog) -> None:
        noise = record_noise(rec.measured, rs.repetitions == AUTO)  # speed trust, whatever the memory
        try:
            pred = predict(self.model, rs.kv)
        except GgufprofError as e:
            # measured all the same (every logged buffer is in measured.kv); nothing to judge against
            rec.predicted = {"unavailable": str(e)}
            rec.check = {"kv_exact": None, "kv_mismatches": [], "prediction": f"not predicted: {e}", **noise}
            return
        cpu_bufts = self._cpu_bufts(rs.placement)
        try:
            placement = place(self.model, pred, offload_kqv=rs.offload_kqv, cpu_bufts=cpu_bufts, flags=rs.placement,
                              devices=self._offload_devices(rec, rs, log))
        except GgufprofError as e:  # a placement not modelled (-sm row): measured, not judged
            rec.check = {"kv_exact": None, "kv_mismatches": [], "prediction": f"not placed: {e}", **noise}
            return
        devices = footprint(self.model, pred, placement,
                            {buft: mib_bytes(mib) for buft, mib in log.compute_buffers_mib.items()})
        rec.predicted = {**pred.to_dict(), "placement": placement.to_dict(),
                         "total": {d.device: d.to_dict() for d in devices}}
        bad = kv_mismatches(pred, log, rec.resolved.get("n_ctx"), rec.resolved.get("n_ctx_seq"), placement)
        rec.check = {"kv_exact": not bad, "kv_mismatches": [str(b) for b in bad]}
        rec.check.update(rss_check(rec, placement, log, graph_meta_bytes(self.model, pred.n_ctx, pred.n_ubatch)))
        rec.check.update(vram_check(rec, placement, log))
        rec.check.update(weights_check(placement, log))
        rec.check.update(host_weights_check(placement, log) if cpu_bufts is not None else {})
        rec.check.update(repack_check(placement, log, cpu_bufts is not None))
        rec.check.update(footprint_check(rec, devices, placement))
        rec.check.update(noise)

    @staticmethod
    def _offload_devices(rec: Record, rs: RunSettings, log: LlamaLog) -> list[OffloadDevice]:
        """The devices the worker's llama.cpp offloaded to, in its order (select_devices over the list
        the worker reported at load: rpc-servers, GPUs, their free memory). A record written before
        the worker reported it: the first GPU its log names, if any (-ngl on one GPU, all it ran then)."""
        backend = rec.measured.get("devices")
        if backend is not None:
            return select_devices(backend, rs.placement)
        gpus = log.gpu_devices
        return [OffloadDevice(gpus[0])] if gpus else []

    def _cpu_bufts(self, flags: PlacementFlags) -> dict[str, str] | None:
        """The buffer type llama.cpp gives each weight on the CPU at this placement's device list,
        --no-host and --no-repack (PlacementFlags.cpu_buft_key), asked once per sweep and key of its
        dry run (measure/dry_run.py); None when the model file is not here (stored results of
        another machine) or llama.cpp refuses the placement."""
        key = flags.cpu_buft_key()
        if key not in self._bufts and self.model.path.is_file():
            try:
                with DryRun(self.model.path, placement=key) as dry:
                    self._bufts[key] = dry.cpu_buffer_types()
            except GgufprofError:  # a stored record's placement this llama.cpp cannot load (--recheck of
                self._bufts[key] = None  # another build's results): its host buffers are not judged
        return self._bufts.get(key)

    def recheck(self) -> list[Record]:
        """Recompute every ok record's prediction and checks from its stored llama.cpp log, without
        measuring again (for results made before a fix to the model or the checks). The old file is
        kept as a backup; a record whose log is missing or not a log file keeps its old checks."""
        with ResultsLock(self.out_dir):
            self._refuse_links()
            lines = self._existing()
            out = [x for x in lines if isinstance(x, Record)]
            for rec in out:
                log = self._stored_log(rec)
                if rec.status == "ok" and log is not None:
                    self._check(rec, RunSettings.from_dict(rec.settings), parse_log(log))
            self._rewrite(lines)
            write_csv(self.results, self.out_dir / "results.csv")
        return out

    def _stored_log(self, rec: Record) -> str | None:
        """A record's llama.cpp log: a regular file inside the results directory, of sane size."""
        name = rec.measured.get("log_file")
        if not isinstance(name, str):
            return None
        path = (self.out_dir / name).resolve()
        try:
            ok = path.is_relative_to(self.out_dir.resolve()) and path.is_file() and path.stat().st_size <= LOG_MAX
        except OSError:
            ok = False
        if not ok:
            self.problems.append(f"{rec.id}: log {name!r} is not a log file of these results; its checks are kept")
            return None
        return path.read_text(encoding="utf-8", errors="replace")


LOG_MAX = 256 << 20  # a llama.cpp log of one configuration is a few hundred KiB


class _terminate_as_interrupt:
    """SIGTERM handled like Ctrl-C while a sweep runs (in the main thread): the record being written
    completes, results.csv is written, and the caller sees KeyboardInterrupt."""

    def __enter__(self):
        import threading

        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


def measure_one(model: ModelInfo, rs: RunSettings, out_dir: Path, timeout: float = 600,
                quality: QualitySettings | None = None) -> Record:
    """One configuration measured as a one-configuration sweep into ``out_dir``: its own worker, the
    same record and failure handling as any sweep (a deployment check, a fit answer's verification)."""
    (rec,) = Sweep(model, GridSpec.single(rs), out_dir, timeout=timeout, quality=quality).run().records
    return rec


def default_out_dir(model: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("ggufprof-out") / f"{model.stem}-{stamp}"


def default_threads() -> int:
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1
