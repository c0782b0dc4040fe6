"""Choosing items for all label sets at once."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ml.coverage import coverage
from worker.ml.joint_strategies import (
    joint_auto,
    joint_select,
    joint_uncertainty,
    rank_normalise,
    set_uncertainty,
)
from worker.ml.label_sets import LabelSet
from worker.ml.multitask import IndependentHeads

SETS = [LabelSet("a", "single", ("p", "q")), LabelSet("b", "single", ("p", "q")),
        LabelSet("t", "multi", ("x", "y"))]


class _Fixed:
    """A per-set model whose probabilities are given per pool row (X holds the row index)."""

    def __init__(self, P: np.ndarray) -> None:
        self.P = P
        self.classes_ = np.arange(P.shape[1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.P[X[:, 0].astype(int)]


class _Joint:
    def __init__(self, models: dict) -> None:
        self.models = models

    def set_model(self, name: str):
        return self.models.get(name)


def _pool(N: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([np.arange(N)[:, None], rng.normal(size=(N, 7))], axis=1)


def test_uncertainty_per_kind() -> None:
    assert set_uncertainty(np.array([[0.5, 0.5], [1.0, 0.0]]), multi=False).tolist() == [1, 0]
    u = set_uncertainty(np.array([[0.5, 1.0], [0.9, 0.1]]), multi=True)  # per tag, averaged
    assert u == pytest.approx([0.5, 0.2])
    assert rank_normalise(np.array([3.0, 1.0, 2.0])).tolist() == pytest.approx([1, 1 / 3, 2 / 3])


def test_prefers_items_uncertain_in_several_sets() -> None:
    N = 200
    confident = np.tile([0.97, 0.03], (N, 1))
    Pa, Pb = confident.copy(), confident.copy()
    Pa[0] = Pb[0] = [0.6, 0.4]  # item 0: fairly uncertain in both sets
    Pa[1] = [0.5, 0.5]  # item 1: the most uncertain item of set a only
    Pb[2] = [0.5, 0.5]  # item 2: the most uncertain item of set b only
    Pt = np.tile([0.02, 0.98], (N, 1))
    Pt[0] = [0.4, 0.7]
    model = _Joint({"a": _Fixed(Pa), "b": _Fixed(Pb), "t": _Fixed(Pt)})
    X = _pool(N)
    u = joint_uncertainty(model, X, SETS)
    assert int(np.argmax(u)) == 0 and u[0] > u[1] and u[0] > u[2]
    many = np.zeros((100, X.shape[1]))  # past the cold start: 5 labels per class of every set
    got = joint_auto(model, X, 5, label_sets=SETS, X_labeled=many, batch_size=5,
                     random_state=0)
    assert got[0] == 0 and {1, 2} <= set(got.tolist())
    # per-set selection would take its own most uncertain item first
    assert joint_select("set:a", model, X, 1, label_sets=SETS, X_labeled=many,
                        random_state=0)[0] == 1


def test_cold_start_is_coverage_of_the_shared_space() -> None:
    X = _pool(300)
    a = joint_auto(None, X, 20, label_sets=SETS, X_labeled=None, batch_size=10, random_state=3)
    b = coverage(None, X, 20, X_labeled=None, batch_size=10, random_state=3)
    assert a.tolist() == b.tolist()


def test_joint_select_on_fitted_heads_with_partial_labels() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 12))
    labels = {"a": (X[:, 0] > 0).astype(int), "b": (X[:, 1] > 0).astype(int),
              "t": (X[:, 2:4] > 0).astype(np.int8)}
    labels["b"][:100] = -1  # labeled in some sets only
    labels["t"][100:200] = -1
    lab = np.arange(300)
    model = IndependentHeads(SETS).fit(X[lab], {k: v[lab] for k, v in labels.items()})
    pool = X[300:]
    for strategy in ("auto", "random", "set:t"):
        got = joint_select(strategy, model, pool, 30, label_sets=SETS, X_labeled=X[lab],
                           batch_size=10, random_state=0)
        assert len(got) == 30 and len(set(got.tolist())) == 30 and got.max() < 100
    with pytest.raises(ValueError, match="unknown joint strategy"):
        joint_select("nope", model, pool, 3, label_sets=SETS)
    # items near both boundaries come before items far from every boundary
    got = joint_select("auto", model, pool, 100, label_sets=SETS, X_labeled=X[lab],
                       batch_size=10, random_state=0)
    dist = np.abs(pool[:, :4]).sum(axis=1)
    assert dist[got[:20]].mean() < dist[got[-20:]].mean()
