"""measure/memory.py: the RSS sampler runs during allocation and warm-up, never while speed is timed."""

from __future__ import annotations

import time

from ggufprof.measure.sampling import RssSampler


def test_paused_sampler_does_not_wake_up():
    with RssSampler(interval=0.002) as s:
        time.sleep(0.1)
        running = s.n_samples
        assert running >= 2
        with s.paused():
            before = s.n_samples
            time.sleep(0.2)
            during = s.n_samples - before
        time.sleep(0.1)
        assert s.n_samples > before + during  # sampling resumes
    assert during <= 1  # at most the sample already under way when it was paused


def test_peak_covers_a_paused_period():
    with RssSampler(interval=0.002) as s:
        with s.paused():
            block = bytearray(64 << 20)  # touched: resident
            block[::4096] = b"x" * len(block[::4096])
            high = s.rss()
        del block
    assert s.peak >= high  # taken when the pause ends, and the kernel's own peak covers the rest
