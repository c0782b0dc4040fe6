"""Wilson interval and accuracy estimates."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ml.metrics import accuracy_with_ci, cross_val_accuracy, wilson_interval


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


def test_accuracy_with_ci() -> None:
    est = accuracy_with_ci(np.array([1, 2, 3, 4]), np.array([1, 2, 3, 0]))
    assert est.accuracy == 0.75 and est.n == 4 and est.low < 0.75 < est.high
    assert accuracy_with_ci(np.array([]), np.array([])).accuracy is None
    assert set(est.as_dict()) == {"accuracy", "low", "high", "n", "confidence"}


def test_cross_val_accuracy() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (30, 8)), rng.normal(3, 1, (30, 8))])
    y = np.repeat([7, 9], 30)
    assert cross_val_accuracy(X, y) > 0.9
    assert cross_val_accuracy(X, y, C=0.1) > 0.9
    assert cross_val_accuracy(X[:31], y[:31]) is None  # class 9 has a single example
