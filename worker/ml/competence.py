"""A measured switch from coverage to uncertainty: DCoM's competence (Mishal & Weinshall 2024).

``auto`` switches from ``coverage`` to ``diversity`` at a fixed count of labels per class.
DCoM ("Active learning for all learners", arXiv 2407.01804) measures instead how much of the
pool the labels already *cover*: each labeled item owns a ball of radius ``delta_i`` and the
competence ``S_L = logistic(P_cov; a = 0.9, k = 30)`` (their eq. 6, normalised so that full
coverage gives 1) of the covered share ``P_cov`` decides how far selection has moved from
coverage to uncertainty.  Radii follow the paper's two steps:

- ``delta_0``, ProbCover's purity radius (Yehuda et al. 2022): the largest radius at which
  ``ALPHA`` (95 %) of the balls hold a single k-means pseudo-class (k = the number of classes);
- each labeled item's ball then grows as far as the current head's predictions inside it stay
  ``ALPHA`` pure for that item's predicted class: where the head is consistent, the region
  counts as covered.

Distances are Euclidean between unit rows projected to 64 dimensions, on a uniform subsample of
at most ``MAX_POINTS`` pool items (and as many labeled items), so the cost is bounded at any
pool size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.ml.batch_selection import diversity
from worker.ml.coverage import coverage
from worker.ml.ranking import RandomState, has_model, kmeans, project, rng_from, subsample

#: ProbCover's purity level for delta_0, also used for the growth of each ball.
ALPHA = 0.95
#: DCoM's competence logistic: midpoint and steepness (paper's values).
MIDPOINT = 0.9
STEEPNESS = 30.0
#: Pool items (and labeled items) on which coverage is measured.
MAX_POINTS = 3_000


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.sqrt(np.maximum(sq, 0.0))


def purity_radius(Xu: np.ndarray, n_classes: int, rng: np.random.Generator) -> float:
    """ProbCover's delta_0: the (1 - ALPHA) quantile of each point's distance to the nearest
    point of another k-means pseudo-class."""
    labels, _ = kmeans(Xu, max(2, n_classes), rng)
    D = _distances(Xu, Xu)
    D[labels[:, None] == labels[None, :]] = np.inf
    return float(np.quantile(D.min(axis=1), 1.0 - ALPHA))


def grown_radii(D: np.ndarray, pred_pool: np.ndarray, pred_lab: np.ndarray,
                delta0: float) -> np.ndarray:
    """Per labeled item (rows of ``D``, distances to the pool subsample): the largest radius at
    which at least ``ALPHA`` of the pool items inside share the item's predicted class, never
    below ``delta0``."""
    order = np.argsort(D, axis=1)
    agree = pred_pool[order] == pred_lab[:, None]
    purity = np.cumsum(agree, axis=1) / np.arange(1, D.shape[1] + 1)
    radii = np.full(len(D), delta0)
    for i in range(len(D)):
        ok = np.flatnonzero(purity[i] >= ALPHA)
        if len(ok):
            radii[i] = max(delta0, float(D[i, order[i, ok[-1]]]))
    return radii


def competence_score(p_cov: float) -> float:
    """DCoM eq. 6: ``(1 + e^{-k(1-a)}) / (1 + e^{-k(P_cov - a)})``, 1 at full coverage."""
    return float((1.0 + np.exp(-STEEPNESS * (1.0 - MIDPOINT)))
                 / (1.0 + np.exp(-STEEPNESS * (p_cov - MIDPOINT))))


def competence(model: Any, X_pool: np.ndarray, X_labeled: np.ndarray, n_classes: int,
               rng: np.random.Generator) -> float:
    """The competence ``S_L`` in [0, 1] of the labels ``X_labeled`` on the pool (see module)."""
    if not has_model(model) or not len(X_labeled):
        return 0.0
    sub = subsample(len(X_pool), MAX_POINTS, rng)
    lab = subsample(len(X_labeled), MAX_POINTS, rng)
    Xu, Xl = project(X_pool[sub], np.asarray(X_labeled)[lab], rng=rng)
    delta0 = purity_radius(Xu, n_classes, rng)
    D = _distances(Xl, Xu)
    pred_pool = model.predict_proba(X_pool[sub]).argmax(axis=1)
    pred_lab = model.predict_proba(np.asarray(X_labeled)[lab]).argmax(axis=1)
    radii = grown_radii(D, pred_pool, pred_lab, delta0)
    p_cov = float((D <= radii[:, None]).any(axis=0).mean())
    return competence_score(p_cov)


def dcom_auto(model: Any, X_pool: np.ndarray, n: int, *, X_labeled: np.ndarray | None = None,
              n_classes: int | None = None, random_state: RandomState = None,
              **context: Any) -> np.ndarray:
    """``coverage`` while DCoM's competence is below one half, then ``diversity``."""
    rng = rng_from(random_state)
    if n_classes is None and has_model(model):
        n_classes = len(model.classes_)
    X_lab = np.zeros((0, X_pool.shape[1])) if X_labeled is None else np.asarray(X_labeled)
    s_l = competence(model, X_pool, X_lab, int(n_classes or 2), rng)
    fn = diversity if s_l >= 0.5 else coverage
    return fn(model, X_pool, n, X_labeled=X_labeled, n_classes=n_classes, random_state=rng,
              **context)
