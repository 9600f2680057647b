"""llama.cpp's own dry run, in a worker process: the compute buffers of any settings, holding nothing.

The model is loaded once with ``no_alloc`` (``python -m ggufprof.measure.probe --dry-run``) and
each question is one context created from it: ~3 ms and no memory, however large the settings.
The worker answers one JSON line per settings line, so a search (``fit``) can ask one setting at a
time. Its KV/RS size lines are cross-checked against the prediction: a difference is an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import GgufprofError
from ..memory.predict import MemoryPrediction
from ..memory.settings import KVSettings
from .llama_log import LlamaLog, mib_bytes, parse_log

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DryResult:
    log: LlamaLog
    n_ctx: int
    n_ctx_seq: int

    @property
    def compute_bytes(self) -> dict[str, int]:
        """Compute buffer bytes per buffer type (CPU, CUDA0, CUDA_Host, ...), as logged."""
        return {buft: mib_bytes(mib) for buft, mib in self.log.compute_buffers_mib.items()}


def _worker_env() -> dict:
    """The environment of a probe worker: this checkout's ggufprof first on the path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


class DryRun:
    def __init__(self, model_path: Path, n_gpu_layers: int = 0):
        cmd = [sys.executable, "-m", "ggufprof.measure.probe", str(model_path), "--dry-run",
               "--n-gpu-layers", str(n_gpu_layers)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=_worker_env())

    def ask(self, s: KVSettings, offload_kqv: bool = True) -> DryResult:
        """The dry run's context for ``s``; GgufprofError when llama.cpp refuses it or the worker died."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({**asdict(s), "offload_kqv": offload_kqv}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise GgufprofError(f"llama.cpp's dry run died: {err.strip().splitlines()[-1] if err.strip() else 'no message'}")
        out = json.loads(line)
        if "load_error" in out:
            raise GgufprofError(out["load_error"])
        if not out["ok"]:
            raise GgufprofError(out["error"])
        return DryResult(parse_log(out["log"]), out["n_ctx"], out["n_ctx_seq"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> "DryRun":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backend_devices_in_worker() -> list[dict]:
    """llama.cpp's own device list (ggml's backends: CPU, CUDA0, Vulkan0, ...) with the free and total
    memory each reports, asked in a worker process so that the caller never loads llama.cpp."""
    out = subprocess.run([sys.executable, "-m", "ggufprof.measure.probe", "--devices"], capture_output=True, text=True,
                         env=_worker_env(), timeout=120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("[")]
    if out.returncode != 0 or not lines:
        err = out.stderr.strip().splitlines()
        raise GgufprofError(f"could not ask llama.cpp for its devices: {err[-1] if err else 'no message'}")
    return json.loads(lines[-1])


def cross_check(pred: MemoryPrediction, dry: DryResult) -> None:
    """The dry run's logged KV/RS sizes must equal the prediction (its buffers are dummies)."""
    from ..results.checks import kv_mismatches

    bad = kv_mismatches(pred, dry.log, dry.n_ctx, dry.n_ctx_seq, check_buffers=False)
    if bad:
        raise GgufprofError("llama.cpp's dry run disagrees with the prediction (a bug in ggufprof's model of "
                            f"llama.cpp, please report it): {'; '.join(map(str, bad[:3]))}")
