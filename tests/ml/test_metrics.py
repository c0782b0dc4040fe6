"""The Wilson interval."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ml.metrics import wilson_interval


def test_wilson_known_values() -> None:
    # Reference: 8/10 at 95 % -> (0.4902, 0.9433) (Wilson 1927; e.g. statsmodels proportion_confint)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_edges_and_width() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.0 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 1.0
    narrow = wilson_interval(900, 1000)
    wide = wilson_interval(9, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert wilson_interval(45, 50, 0.99)[0] < wilson_interval(45, 50, 0.95)[0]
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_wilson_coverage_is_close_to_nominal() -> None:
    rng = np.random.default_rng(0)
    p, n, trials = 0.85, 40, 4000
    k = rng.binomial(n, p, size=trials)
    covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(x), n) for x in k)])
    assert 0.93 <= covered <= 0.98
