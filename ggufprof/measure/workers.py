"""The one protocol between ggufprof and the worker processes that load llama.cpp.

As pyperf's manager and worker: the caller never loads llama.cpp in its own process. It starts
``python -m ggufprof.measure.<worker>``, sends requests and reads replies; llama.cpp's memory, its
log and a crash (an abort or assert inside llama.cpp kills the process) stay in the worker.

* **Channel.** Two pipes handed to the worker as file descriptors (``GGUFPROF_CHANNEL=rfd,wfd``),
  never stdout: whatever llama.cpp or Python prints (``GGUFPROF_LLAMA_LOG=1`` echoes llama.cpp's
  log) cannot corrupt the protocol. One JSON object per line each way.
* **Replies.** ``{"result": ...}``, or ``{"error": message}`` when the worker refused the request
  (a :class:`GgufprofError`: llama.cpp refused the model or the settings, bad input). A worker that
  dies, is killed or runs past its deadline leaves no reply: :class:`Reply` says why, worded for a
  record's ``reason`` (the signal, the tail of what the worker printed).
* **Progress.** Before its reply a worker may send ``{"progress": [done, total, doing]}`` lines
  (:func:`progress`, worker side); :meth:`Worker.ask` hands each to its ``on_progress`` callback
  and reads on. A long run (a quality measurement, a speed-up timing) so tells the user what it is
  doing without a second channel.
* **Environment.** This checkout's ggufprof first on the path (:func:`worker_env`); the worker's
  stdout and stderr go to one temporary file whose tail explains a crash.
* **Lifetime.** A worker dies with its parent however the parent dies (``PR_SET_PDEATHSIG``), ends
  when its request pipe closes, and is killed at a deadline.

One-shot workers (a sweep configuration, a quality run: one process each, so that RSS is theirs
alone) use :func:`run_once`; the probe worker answers many requests (the dry run's search, the
architecture suite) through one :class:`Worker`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import GgufprofError

CHANNEL_ENV = "GGUFPROF_CHANNEL"
PROBE = "probe_worker"  # the worker of llama.cpp's dry run and device list (measure/probe_worker.py)
SEARCH_PROBES = 2  # a placement search's probe workers: its dry run, and the host's buffer types at once (dry_run.py)
Progress = Callable[[int, "int | None", str], None]  # (done, total or None, what runs now)
ROOT = Path(__file__).resolve().parents[2]  # the directory holding this ggufprof package
TAIL_CHARS = 800


LIB_ENV = "LLAMA_CPP_LIB_PATH"  # where llama-cpp-python's bindings load the libraries from


def worker_env(llama_lib: Path | None = None) -> dict[str, str]:
    """A worker's environment: the caller's, with this checkout's ggufprof first on the path;
    ``llama_lib`` (a checked :func:`llama_lib_path`): the llama.cpp build it loads instead."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    if llama_lib is not None:
        env[LIB_ENV] = str(llama_lib)
    return env


def llama_lib_path(lib_dir: str | Path) -> Path:
    """``--llama-lib DIR`` checked: the directory of a llama.cpp build's shared libraries, resolved."""
    path = Path(lib_dir).expanduser().resolve()
    if not (path / "libllama.so").is_file() and not (path / "libllama.dylib").is_file():
        raise GgufprofError(f"--llama-lib {lib_dir}: no libllama here; give the directory of a llama.cpp build's "
                            "shared libraries (e.g. build/bin of a cmake -DBUILD_SHARED_LIBS=ON build)")
    return path


def use_llama_lib(lib_dir: str | Path | None) -> Path | None:
    """Run every llama.cpp worker of this process on the llama.cpp build in ``lib_dir`` (its
    libllama and libggml*: a user's own build or another release), as llama-cpp-python's
    ``LLAMA_CPP_LIB_PATH`` does; records name the build (env.llama_build). None: keep the current one.
    Here, beside the workers' environment it sets, so that the CLI applies ``--llama-lib`` before
    it starts a worker without importing the rest of ggufprof first."""
    if lib_dir is None:
        return None
    path = llama_lib_path(lib_dir)
    os.environ[LIB_ENV] = str(path)
    return path


def _die_with_parent() -> None:
    """In the worker, before exec: be killed (SIGKILL) when the parent dies, however it dies
    (prctl PR_SET_PDEATHSIG on Linux), so no worker outlives an interrupted or killed caller."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


@dataclass
class Reply:
    """A worker's answer to one request: its ``result``, or why there is none (``failure``)."""

    result: object = None
    failure: str | None = None  # None when the worker answered without an error
    refused: bool = False  # the worker answered with an error (GgufprofError), it did not die
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None


class Worker:
    """A running worker process (``python -m ggufprof.measure.<module>``) and its channel."""

    def __init__(self, module: str, sigill_hint: bool = False, llama_lib: Path | None = None):
        """``sigill_hint``: a worker killed by SIGILL ran with repacked CPU weights; say so.
        ``llama_lib``: the llama.cpp build it loads, if not this process's (worker_env)."""
        self.module, self.sigill_hint = module, sigill_hint
        self.env = worker_env(llama_lib)
        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        self._output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"ggufprof.measure.{module}"], stdin=subprocess.DEVNULL, stdout=self._output,
            stderr=subprocess.STDOUT, pass_fds=(req_r, rep_w), preexec_fn=_die_with_parent,
            env={**self.env, CHANNEL_ENV: f"{req_r},{rep_w}"})
        os.close(req_r)
        os.close(rep_w)
        self._buf = b""

    def ask(self, request: dict, timeout: float | None = None, on_progress: Progress | None = None) -> Reply:
        """Send one request and wait for its reply, at most ``timeout`` seconds (None: no limit);
        the worker's progress lines go to ``on_progress`` (done, total, doing) as they come."""
        return self.receive(timeout, on_progress) if self.send(request) else self._died()

    def send(self, request: dict) -> bool:
        """Send one request without waiting for its reply (``receive`` reads the replies in the order
        sent): the caller works meanwhile. False when the worker is gone (``receive`` says why)."""
        try:
            os.write(self._req_w, json.dumps(request).encode() + b"\n")
            return True
        except (BrokenPipeError, OSError):
            return False

    def receive(self, timeout: float | None = None, on_progress: Progress | None = None) -> Reply:
        """The reply to the oldest request sent and not yet answered (``ask``'s wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while b"\n" not in self._buf:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([self._rep_r], [], [], wait)
                if not ready:
                    self.kill()
                    return Reply(failure=f"timed out after {timeout:g} s" + self.output_tail(), timed_out=True)
                chunk = os.read(self._rep_r, 1 << 16)
                if not chunk:
                    return self._died()
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            reply = json.loads(line)
            if "progress" not in reply:
                break
            if on_progress is not None:
                on_progress(*reply["progress"])
        if "error" in reply:
            return Reply(failure=str(reply["error"]), refused=True)
        return Reply(result=reply.get("result"))

    def _died(self) -> Reply:
        rc = self.proc.wait()
        if rc < 0:
            sig = signal.Signals(-rc).name
            why = f"worker killed by {sig}" + self.output_tail()
            if sig == "SIGILL" and self.sigill_hint:
                why += (" (an instruction this CPU cannot run inside llama.cpp, e.g. AMX kernels for "
                        "repacked weights in a VM: try --no-repack)")
        else:
            why = f"worker exited with code {rc}" + self.output_tail()
        return Reply(failure=why)

    def output(self) -> str:
        """What the worker printed so far (stdout and stderr), for llama.cpp's last words."""
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")

    def output_tail(self, n: int = TAIL_CHARS) -> str:
        lines = [ln for ln in self.output().strip().splitlines() if ln.strip()]
        return ": " + " | ".join(lines[-5:])[-n:] if lines else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self, timeout: float = 10, kill: bool = False) -> None:
        """Close the request pipe (the worker ends its loop and exits); kill it if it does not within
        ``timeout`` seconds, or at once with ``kill`` (a worker with nothing to save: a dry run),
        without waiting for it to go: a GPU backend's teardown is the driver's time, not the
        caller's (a daemon thread reaps it; on the H200 the end of a cold estimate --total after its
        last reply went from 0.24 to 0.10 s, scripts/bench_estimate_speed.py --profile)."""
        for fd in (self._req_w, self._rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if kill:
            if self.proc.poll() is None:
                self.proc.kill()
                threading.Thread(target=self.proc.wait, daemon=True).start()
        else:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._output.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_started: dict[str, list[Worker]] = {}  # prestart(): workers per module, started before they are needed


def prestart(module: str, llama_lib: Path | None = None, count: int = 1) -> None:
    """Start workers now (``count`` of this module in all) for :func:`take` later: a command that will
    need one (``estimate --total``: llama.cpp's dry run) calls this first, so that the worker's
    start-up -- Python, llama.cpp's libraries, a GPU backend's initialisation -- runs while the
    command imports the rest of ggufprof and reads the model's header (2 cores or more run both at
    once). ``llama_lib``: the build it loads, when the caller has not applied ``--llama-lib`` yet
    (launch.py's head start)."""
    started = _started.setdefault(module, [])
    while len(started) < count:
        started.append(Worker(module, llama_lib=llama_lib))


def take(module: str) -> Worker:
    """A worker :func:`prestart` started, if it still runs in the environment a new one would get
    (``--llama-lib`` changes the libraries it loads); else a new one."""
    started = _started.get(module, [])
    while started:
        w = started.pop(0)
        if w.env == worker_env() and w.proc.poll() is None:
            return w
        w.close(kill=True)
    return Worker(module)


@atexit.register
def _discard() -> None:
    """At exit: a prestarted worker nobody took (the command failed first) is killed."""
    while _started:
        for w in _started.popitem()[1]:
            w.close(kill=True)


def run_once(module: str, request: dict, timeout: float | None, sigill_hint: bool = False,
             on_progress: Progress | None = None) -> Reply:
    """One request to a fresh worker process, which then exits."""
    with Worker(module, sigill_hint) as w:
        return w.ask(request, timeout, on_progress)


_replies = None  # the worker's reply channel while serve() answers a request: where progress() writes


def progress(done: int, total: int | None, doing: str) -> None:
    """Worker side: tell the parent how far the current request is (nothing outside a worker)."""
    if _replies is not None:
        _replies.write(json.dumps({"progress": [done, total, doing]}).encode() + b"\n")
        _replies.flush()


def serve(handle: Callable[[dict], object]) -> int:
    """The worker's side: answer every request on the channel with ``handle(request)``, until the
    parent closes it. A GgufprofError is a refusal (``{"error"}``); anything else is a crash."""
    spec = os.environ.pop(CHANNEL_ENV, None)
    if not spec:
        sys.stderr.write(f"this is a ggufprof worker: it is started by ggufprof ({CHANNEL_ENV} is not set)\n")
        return 2
    rfd, wfd = (int(x) for x in spec.split(","))
    global _replies
    with os.fdopen(rfd, "rb") as requests, os.fdopen(wfd, "wb") as replies:
        _replies = replies
        for line in requests:
            if not line.strip():
                continue
            try:
                reply = {"result": handle(json.loads(line))}
            except GgufprofError as e:
                reply = {"error": str(e)}
            replies.write(json.dumps(reply).encode() + b"\n")
            replies.flush()
    return 0
