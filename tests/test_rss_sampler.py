"""measure/sampling.py: the RSS sampler runs during allocation and warm-up, never while speed is timed."""

from __future__ import annotations

import sys
import threading
from types import FrameType

from ggufprof.measure.sampling import RssSampler

from .conftest import wait_until


def parked_untimed(s: RssSampler) -> bool:
    """Whether the sampler's thread is blocked in ``_run`` on an Event wait without a timeout: nothing
    but ``paused()`` ending (or ``__exit__``) can wake it. Between samples it waits with a timeout
    (``interval``), so a thread that still polled would not be seen here."""
    frame: FrameType | None = sys._current_frames().get(s._thread.ident)
    callee = None
    while frame is not None and frame.f_code is not RssSampler._run.__code__:
        callee, frame = frame, frame.f_back
    return (frame is not None and callee is not None and callee.f_code is threading.Event.wait.__code__
            and callee.f_locals.get("timeout") is None)


def test_paused_sampler_does_not_wake_up():
    with RssSampler(interval=0.002) as s:
        wait_until(lambda: s.n_samples >= 2, "the sampler's first samples")
        with s.paused():
            before = s.n_samples
            wait_until(lambda: parked_untimed(s), "the paused sampler to block")
            during = s.n_samples - before
        wait_until(lambda: s.n_samples > before + during, "sampling to resume")
    assert during <= 1  # at most the sample already under way when it was paused


def test_peak_covers_a_paused_period():
    with RssSampler(interval=0.002) as s:
        with s.paused():
            block = bytearray(64 << 20)  # touched: resident
            block[::4096] = b"x" * len(block[::4096])
            high = s.rss()
        del block
    assert s.peak >= high  # taken when the pause ends, and the kernel's own peak covers the rest
