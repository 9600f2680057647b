"""Process memory while llama.cpp runs: RSS through psutil (sampled in a thread, so the peak
during decoding is seen, not only the value at the end) and VRAM through NVML when present."""

from __future__ import annotations

import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds; ``peak`` is the largest seen.

    llama_decode releases the GIL (ctypes), so the sampler keeps running during computation, which
    is what it is for: allocation and the first decodes. It must not run while speed is timed:
    on a machine with as many cores as compute threads, each wake-up (200 a second) preempts one of
    ggml's threads and the others wait for it at the next barrier -- tg was 1-20 % slower with the
    sampler running than without it in 5 of 5 paired runs on a 2-core VM (SmolLM2, 2 threads).
    ``paused()`` blocks the thread (no wake-ups) for the timed loops; the kernel's own high-water
    mark (``peak_rss_rusage``) still covers them.
    """

    def __init__(self, interval: float = 0.005):
        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.rss()
        self._peak_lock = threading.Lock()  # the thread and paused() both raise peak: no update may be lost
        self.n_samples = 0
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.proc.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self._running.wait()  # blocked, not polling, while paused
            if self._stop.is_set():
                break
            self._note()
            self.n_samples += 1
            self._stop.wait(self.interval)

    def _note(self) -> None:
        """Raise peak to the RSS now. The read and the write are one step under a lock: a sampler
        thread descheduled between them (a loaded machine) would otherwise write back an older,
        lower peak over the one paused() just took."""
        rss = self.rss()
        with self._peak_lock:
            self.peak = max(self.peak, rss)

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._note()
        self._running.clear()
        try:
            yield
        finally:
            self._note()
            self._running.set()

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join()
        self._note()


def peak_rss_rusage() -> int:
    """The kernel's high-water mark for this process (bytes; ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Vram:
    """Per-process and per-device GPU memory via NVML; ``available`` False with ``reason`` otherwise."""

    def __init__(self) -> None:
        self.available, self.reason, self._nvml, self.handles = False, None, None, []
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
            return
        try:
            pynvml.nvmlInit()
            n = pynvml.nvmlDeviceGetCount()
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML unavailable: {e}"
            return
        if n == 0:
            self.reason = "no NVIDIA GPU visible"
            return
        self._nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
        self.available = True

    def process_bytes(self, pid: int) -> int | None:
        """This process's memory summed over all GPUs (None when the driver does not report it)."""
        if not self.available:
            return None
        total, seen = 0, False
        for h in self.handles:
            for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(h):
                if p.pid == pid and p.usedGpuMemory is not None:
                    total += p.usedGpuMemory
                    seen = True
        return total if seen else 0

    def device_used(self) -> list[int] | None:
        if not self.available:
            return None
        return [self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles]

    def info(self) -> dict | None:
        if not self.available:
            return None
        n = self._nvml

        def s(x):
            return x.decode() if isinstance(x, bytes) else x

        cuda = n.nvmlSystemGetCudaDriverVersion()
        return {
            "gpus": [s(n.nvmlDeviceGetName(h)) for h in self.handles],
            "memory_total": [n.nvmlDeviceGetMemoryInfo(h).total for h in self.handles],
            "driver": s(n.nvmlSystemGetDriverVersion()),
            "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}",
        }
