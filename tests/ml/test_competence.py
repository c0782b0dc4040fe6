"""DCoM's measured switch: coverage of the pool by the labels' balls, competence, the choice."""

from __future__ import annotations

import numpy as np

from worker.ml.competence import competence, competence_score, dcom_auto, grown_radii
from worker.ml.head import LogisticHead


def _blobs(per: int, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 32)) * 3
    X = np.concatenate([c + rng.normal(size=(per, 32)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(k), per)


def test_competence_score_is_dcoms_logistic() -> None:
    assert competence_score(1.0) == 1.0
    assert competence_score(0.5) < 0.01 and competence_score(0.95) > 0.8
    assert competence_score(0.8) < competence_score(0.9) < competence_score(0.95)


def test_balls_grow_while_the_heads_predictions_stay_pure() -> None:
    D = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    assert grown_radii(D, np.array([1, 1, 1, 0, 0]), np.array([1]), 0.05)[0] == 0.3
    assert grown_radii(D, np.array([0, 0, 0, 0, 0]), np.array([1]), 0.05)[0] == 0.05


def test_competence_follows_how_far_the_head_is_consistent() -> None:
    """One label per well-separated blob: the head is consistent over each blob, the balls grow
    over the whole pool, competence is high.  Random labels on one shapeless cloud: the head's
    predictions are a patchwork, the balls stay small, competence stays low (keep covering)."""
    X, y = _blobs(300)
    one = np.array([np.flatnonzero(y == c)[0] for c in range(4)])
    head = LogisticHead().fit(X[one], y[one])
    assert competence(head, X, X[one], 4, np.random.default_rng(1)) >= 0.5
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(1200, 32)).astype(np.float32)
    few = rng.choice(len(cloud), 12, replace=False)
    noise = LogisticHead().fit(cloud[few], np.arange(12) % 4)
    assert competence(noise, cloud, cloud[few], 4, np.random.default_rng(1)) < 0.5
    assert competence(None, X, X[one], 4, rng) == 0.0
    ranked = dcom_auto(head, X, 20, X_labeled=X[one], n_classes=4, batch_size=10,
                       random_state=0)
    assert len(set(ranked.tolist())) == 20
