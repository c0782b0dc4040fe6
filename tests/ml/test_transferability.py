"""LogME and the backbone recommendation rule, on synthetic features with known structure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.ml.transferability import MIN_GAIN, assess_backbones, logme, paired_gain


def _reference_logme(F: np.ndarray, y: np.ndarray) -> float:
    """LogME as the paper's Algorithm 1 states it, with explicit d x d matrices (slow, plain)."""
    n, d = F.shape
    eps_m = 1e-5 / ((F**2).sum() / n)  # the reference's 1e-5, per unit of squared row norm
    FtF = F.T @ F
    s, V = np.linalg.eigh(FtF)
    s = np.clip(s, 0, None)
    out = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        alpha, beta = 1.0, 1.0
        for _ in range(200):
            A = alpha * np.eye(d) + beta * FtF
            m = beta * np.linalg.solve(A, F.T @ t)
            gamma = float((beta * s / (alpha + beta * s)).sum())
            new_alpha = gamma / (m @ m + eps_m)
            new_beta = (n - gamma) / (((F @ m - t) ** 2).sum() + 1e-5)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-9
            alpha, beta = new_alpha, new_beta
            if done:
                break
        A = alpha * np.eye(d) + beta * FtF
        m = beta * np.linalg.solve(A, F.T @ t)
        ev = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - np.linalg.slogdet(A)[1] / 2
              - beta / 2 * (((F @ m - t) ** 2).sum() + 1e-5) - alpha / 2 * (m @ m + eps_m)
              - n / 2 * math.log(2 * math.pi))
        out.append(ev / n)
    return float(np.mean(out))


def _blobs(n_per: int, k: int, d: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    y = np.repeat(np.arange(k), n_per)
    return centres[y] + rng.normal(size=(len(y), d)), y


@pytest.mark.parametrize("n,d", [(60, 20), (30, 80)])  # more items than dims, and fewer
def test_logme_matches_the_papers_algorithm(n, d):
    X, y = _blobs(n // 3, 3, d, 1.0, seed=n)
    assert logme(X, y) == pytest.approx(_reference_logme(X, y), abs=1e-5)


def test_logme_stays_finite_when_the_features_can_fit_every_label():
    """Fewer items than dimensions (100 labels, 1280-d embeddings): F w = y exactly is possible,
    and without the guards alpha and beta run off to infinity."""
    X, y = _blobs(10, 4, 400, 3.0, seed=11)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    value = logme(X, y)
    assert np.isfinite(value)
    assert value == pytest.approx(_reference_logme(X, y), abs=1e-4)


def test_logme_is_higher_for_separable_features_than_for_noise():
    X, y = _blobs(40, 4, 32, 3.0, seed=1)
    noise = np.random.default_rng(2).normal(size=X.shape)
    weaker, _ = _blobs(40, 4, 32, 0.5, seed=1)
    assert logme(X, y) > logme(weaker, y) > logme(noise, y)


def test_logme_is_invariant_to_a_global_feature_scale():
    """The maximum evidence does not depend on the units of the features (alpha absorbs them);
    it does depend on a per-feature rescaling, which changes the prior's shape."""
    X, y = _blobs(30, 3, 16, 1.0, seed=3)
    assert logme(100.0 * X, y) == pytest.approx(logme(X, y), abs=1e-6)
    skew = np.r_[np.full(8, 10.0), np.full(8, 0.1)]
    assert abs(logme(X * skew, y) - logme(X, y)) > 1e-3


def test_paired_gain_is_the_mean_item_difference_with_its_standard_error():
    a = np.array([1, 0, 1, 1, 0, 1, 0, 1.0])
    b = np.array([1, 1, 1, 1, 1, 1, 0, 1.0])
    gain, se = paired_gain(b, a)
    assert gain == pytest.approx(2 / 8)
    assert se == pytest.approx(np.std(b - a, ddof=1) / math.sqrt(8))
    assert paired_gain(a, a) == (0.0, 0.0)


def test_clearly_better_backbone_is_recommended():
    good, y = _blobs(15, 4, 64, 1.5, seed=4)
    poor, _ = _blobs(15, 4, 64, 0.35, seed=5)
    result = assess_backbones({"poor": poor, "good": good}, y, current="poor")
    rows = {r["backbone"]: r for r in result["rows"]}
    assert rows["good"]["cv_accuracy"] > rows["poor"]["cv_accuracy"] + 0.1
    assert result["recommended"] == "good" and result["best"] == "good"
    assert rows["good"]["gain"] >= MIN_GAIN and rows["good"]["clear_gain"]
    assert rows["good"]["logme"] > rows["poor"]["logme"]
    assert result["transfer_fits"]
    # Already on the good one: nothing to recommend.
    assert assess_backbones({"poor": poor, "good": good}, y, current="good")["recommended"] is None


def test_equally_good_backbones_do_not_switch():
    """Two backbones that see the same classes equally well (the same latent structure, each
    with its own noise): the differences between them are noise, and noise must not switch."""
    X, y = _blobs(12, 3, 48, 0.6, seed=6)
    rng = np.random.default_rng(7)
    switched = 0
    for i in range(6):
        a, b = (X + rng.normal(scale=0.5, size=X.shape) for _ in range(2))
        switched += assess_backbones({"a": a, "b": b}, y, current="a", seed=i)["recommended"] == "b"
    assert switched <= 1


def test_features_that_do_not_separate_the_classes_are_flagged():
    rng = np.random.default_rng(8)
    y = np.repeat([0, 1, 2], [30, 10, 10])
    result = assess_backbones({"x": rng.normal(size=(50, 32)), "z": rng.normal(size=(50, 32))},
                              y, current="x")
    assert result["majority_rate"] == pytest.approx(0.6)
    assert not result["transfer_fits"]
    good, yb = _blobs(10, 3, 32, 2.0, seed=9)
    assert assess_backbones({"g": good}, yb, current="g")["transfer_fits"]


def test_classes_with_too_few_labels_are_left_out_and_too_little_data_is_refused():
    X, _ = _blobs(13, 3, 16, 2.0, seed=10)
    y = np.repeat([0, 1, 2, 7, 9], [10, 10, 10, 5, 4])  # class 7: five labels, kept; 9: four
    result = assess_backbones({"a": X[: len(y)]}, y, current="a")
    assert result["dropped_classes"] == [9]
    assert result["n_labels"] == len(y) - 4 and result["n_classes"] == 4
    with pytest.raises(ValueError, match="at least 2 classes"):
        assess_backbones({"a": X[:9]}, np.r_[np.zeros(6), np.ones(3)], current="a")
    with pytest.raises(ValueError, match="current backbone"):
        assess_backbones({"a": X[: len(y)]}, y, current="b")
