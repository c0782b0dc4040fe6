"""Batch-aware uncertainty: BADGE spreads its batch, balanced selection serves every class."""

from __future__ import annotations

import numpy as np

from worker.ml.head import LogisticHead
from worker.ml.strategies import select


def _skewed_blobs(seed: int = 0, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """6 blobs, the first holding 10x as many items as each of the others; overlapping a bit."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.concatenate([np.zeros(1000, dtype=int), np.repeat(np.arange(1, 6), 100)])
    X = centres[y] + 0.6 * rng.normal(size=(len(y), dim)) / np.sqrt(dim)
    return X.astype(np.float32), y


def _fit(X: np.ndarray, y: np.ndarray, per: list[int]) -> tuple[LogisticHead, np.ndarray]:
    lab = np.concatenate([np.flatnonzero(y == c)[:k] for c, k in enumerate(per)])
    return LogisticHead().fit(X[lab], y[lab]), lab


def test_badge_batch_is_spread_and_uncertain() -> None:
    X, y = _skewed_blobs()
    model, lab = _fit(X, y, [3] * 6)
    pool = np.setdiff1d(np.arange(len(y)), lab)
    idx = select("badge", model, X[pool], 300, random_state=0, batch_size=10)
    assert len(set(idx.tolist())) == 300
    P = model.predict_proba(X[pool])
    conf = P.max(axis=1)
    # the batch: more uncertain than the pool on average, and over several regions
    assert conf[idx[:10]].mean() < np.median(conf)
    assert len(set(y[pool][idx[:10]].tolist())) >= 4
    # after the batch, the ranking goes on by margin (smallest first)
    top2 = np.sort(P[idx[10:]], axis=1)[:, -2:]
    assert (np.diff(top2[:, 1] - top2[:, 0]) >= -1e-12).all()


def test_balanced_serves_the_rarest_labeled_class_and_every_class() -> None:
    """Margin piles onto the big class's boundaries; balanced gives each class its share."""
    X, y = _skewed_blobs()
    per = [12, 6, 6, 6, 6, 2]  # class 5 has the fewest labels
    model, lab = _fit(X, y, per)
    pool = np.setdiff1d(np.arange(len(y)), lab)
    P = model.predict_proba(X[pool])
    top2 = np.argsort(P, axis=1)[:, -2:]  # each item's two most probable classes
    for seed in range(3):
        idx = select("balanced", model, X[pool], 60, random_state=seed, batch_size=6)
        assert len(set(idx.tolist())) == 60
        assert 5 in top2[idx[0]]  # the first pick lies on the boundary of the rarest class
        for c in range(6):  # every batch of 6 touches every class's boundary
            assert (top2[idx[:6]] == c).any(axis=1).any(), (seed, c)
    # the property is not free: plain margin's first batch misses some class boundary
    idx = select("margin", model, X[pool], 6, random_state=0)
    assert not all((top2[idx] == c).any(axis=1).any() for c in range(6))
