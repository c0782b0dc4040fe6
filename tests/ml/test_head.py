"""LogisticHead: robust from the first label, sklearn-compatible, calibrated enough."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from worker.ml.head import C_GRID, DEFAULT_C, LogisticHead


def _blobs(counts: dict[int, int], dim: int = 16, sep: float = 4.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k, (cls, n) in enumerate(counts.items()):
        centre = np.zeros(dim)
        centre[k % dim] = sep
        X.append(rng.normal(size=(n, dim)) + centre + 5.0)  # offset: features are not centred
        y += [cls] * n
    return np.concatenate(X).astype(np.float32), np.asarray(y)


def test_one_class_gives_constant_certain_prediction() -> None:
    X, _ = _blobs({0: 5, 1: 5})
    head = LogisticHead().fit(X[:3], np.array([42, 42, 42]))
    assert head.classes_.tolist() == [42]
    proba = head.predict_proba(X)
    assert proba.shape == (len(X), 1) and np.all(proba == 1.0)
    assert head.predict(X).tolist() == [42] * len(X)
    assert head.cv_accuracy_ is None


def test_two_labels_and_singleton_classes_use_default_c() -> None:
    X, y = _blobs({3: 1, 8: 1})
    head = LogisticHead().fit(X, y)
    assert head.C_ == DEFAULT_C and head.cv_accuracy_ is None
    assert head.predict(X).tolist() == [3, 8]
    X, y = _blobs({1: 1, 2: 1, 5: 2})  # most classes single: nothing to cross-validate
    head = LogisticHead().fit(X, y)
    assert head.C_ == DEFAULT_C and head.cv_accuracy_ is None
    proba = head.predict_proba(X)
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1.0)


def test_one_singleton_class_does_not_stop_cross_validation() -> None:
    """Active learning often leaves a class with one label: C is still chosen by CV."""
    import warnings

    X, y = _blobs({1: 20, 2: 20, 3: 20, 5: 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and quietly (no "least populated class" warning)
        head = LogisticHead().fit(X, y)
    assert head.cv_accuracy_ is not None and head.C_ in C_GRID
    assert head.C_ > DEFAULT_C  # separable blobs: the weak-regularisation end, not the default
    assert head.predict_proba(X).shape == (61, 4)


def test_cv_chooses_c_and_reports_accuracy() -> None:
    X, y = _blobs({10: 20, 20: 20, 30: 20})
    head = LogisticHead().fit(X, y)
    assert head.C_ in C_GRID
    assert head.cv_accuracy_ is not None and head.cv_accuracy_ > 0.9
    assert head.classes_.tolist() == [10, 20, 30]
    assert (head.predict(X) == y).mean() > 0.95
    fixed = LogisticHead(C=0.5).fit(X, y)
    assert fixed.C_ == 0.5 and fixed.cv_accuracy_ is not None


def test_class_imbalance_is_handled() -> None:
    X, y = _blobs({0: 200, 1: 8}, sep=2.0, seed=1)
    Xt, yt = _blobs({0: 500, 1: 500}, sep=2.0, seed=2)
    balanced = LogisticHead().fit(X, y)
    plain = LogisticHead(class_weight=None).fit(X, y)
    recall = lambda h: (h.predict(Xt)[yt == 1] == 1).mean()  # noqa: E731
    assert recall(balanced) >= recall(plain)
    assert recall(balanced) > 0.6


def test_uncertainty_is_meaningful() -> None:
    """Points between the classes get less confident predictions than class centres."""
    X, y = _blobs({0: 30, 1: 30}, sep=4.0)
    head = LogisticHead().fit(X, y)
    centres = np.stack([X[y == 0].mean(0), X[y == 1].mean(0)])
    middle = centres.mean(0, keepdims=True)
    conf_centres = head.predict_proba(centres).max(axis=1)
    conf_middle = head.predict_proba(middle).max(axis=1)
    assert conf_middle[0] < conf_centres.min()
    assert conf_middle[0] < 0.8


def test_float16_and_large_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.ml.head as head_mod

    X, y = _blobs({0: 30, 1: 30})
    head = LogisticHead().fit(X, y)
    monkeypatch.setattr(head_mod, "PREDICT_BLOCK", 7)  # force several blocks
    p16 = head.predict_proba(X.astype(np.float16))
    assert np.allclose(p16, head.predict_proba(X), atol=1e-2)


def test_sklearn_conventions() -> None:
    head = LogisticHead(C=0.1, cv=3)
    assert clone(head).get_params() == head.get_params()
    with pytest.raises(ValueError):
        LogisticHead().fit(np.zeros((3, 2)), np.zeros(2))


def test_temperature_fit_undoes_overconfidence() -> None:
    """Guo et al. 2017: T > 1 softens over-confident probabilities, ~1 keeps calibrated ones,
    and the argmax never changes."""
    from worker.ml.head import fit_temperature, scale_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 4)) * 2.0
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=p) for p in P])  # labels drawn from P: P is calibrated
    assert 0.85 < fit_temperature(P, y) < 1.15
    sharp = scale_temperature(P, 1 / 3)  # three times too confident
    assert 2.5 < fit_temperature(sharp, y) < 3.5
    soft = scale_temperature(sharp, fit_temperature(sharp, y))
    assert np.allclose(soft.sum(axis=1), 1.0)
    assert (soft.argmax(axis=1) == sharp.argmax(axis=1)).all()


def test_calibrated_head_keeps_predictions_and_changes_confidence() -> None:
    X, y = _blobs({0: 30, 1: 30, 2: 30}, sep=2.0)
    plain = LogisticHead().fit(X, y)
    calibrated = LogisticHead(calibrate=True).fit(X, y)
    assert plain.temperature_ == 1.0 and calibrated.temperature_ != 1.0
    assert (calibrated.predict(X) == plain.predict(X)).all()
    assert not np.allclose(calibrated.predict_proba(X), plain.predict_proba(X))
    few = LogisticHead(calibrate=True).fit(X[[0, 30, 60]], y[[0, 30, 60]])  # no CV: no T
    assert few.temperature_ == 1.0
