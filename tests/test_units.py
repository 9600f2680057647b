"""Numbers as ggufprof prints them (ggufprof/units.py)."""

import pytest

from ggufprof.units import mean_spread


@pytest.mark.parametrize("mean,sd,fmt,expected", [
    (150.2, 3.4, ",.0f", "150 ± 3"),
    (150.2, 0.3, ",.0f", "150 ± 0.3"),     # would round to "± 0", which reads as no spread
    (150.2, 0.04, ",.0f", "150 ± 0.04"),
    (150.0, 0.0, ",.0f", "150 ± 0"),       # samples that agree exactly: a measured spread of 0
    (1520.5, None, ",.0f", "1,520 ± n/a"),  # one repetition: no spread measured
    (12.34, 0.02, ".1f", "12.3 ± 0.02"),
    (12.34, 1.25, ".1f", "12.3 ± 1.2"),
])
def test_mean_spread(mean, sd, fmt, expected):
    assert mean_spread(mean, sd, fmt) == expected


def test_mean_spread_compact():
    assert mean_spread(118.4, 0.2, ".0f", sep="±") == "118±0.2"
