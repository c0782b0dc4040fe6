"""Batch-aware uncertainty: which *batch* of uncertain items to label before the next retrain.

A batch of the top-B uncertain items is redundant (near-duplicates around one decision
boundary); these strategies keep the uncertainty while spreading the batch.  Each ranks ``n``
items so that its first ``batch_size`` items are a good batch on their own (the product ranks a
few hundred items so annotators never wait, but retrains after ``batch_size`` labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.ml.coverage import coverage
from worker.ml.modal_compat import classifier_margin
from worker.ml.ranking import (
    SCORE_BLOCK,
    RandomState,
    batch_of,
    block_scores,
    has_model,
    kmeans,
    project,
    rng_from,
    subsample,
    top,
    unit_rows,
)

#: Candidate pre-filter of the diversity strategy: the ``BETA * n`` most uncertain items
#: (Zhdanov 2019 uses beta = 10).
BETA = 10
#: BADGE's k-means++ runs on a uniform subsample of at most this many items (memory: 20,000 x
#: 1280 float32 = 100 MB; pools up to this size are used whole).
MAX_BADGE_POINTS = 20_000


def diversity(model: Any, X_pool: np.ndarray, n: int, *, batch_size: int | None = None,
              random_state: RandomState = None, **context: Any) -> np.ndarray:
    """Uncertain *and* diverse batch: margin pre-filter + weighted k-means.

    Follows Zhdanov 2019 ("Diverse mini-batch active learning"), close to cluster-margin
    (Citovsky et al. 2021): take the ``10 B`` smallest-margin items (modAL
    ``classifier_margin``), cluster them into ``B`` groups with k-means weighted by uncertainty,
    and pick from each group the item nearest its centre.  A batch of top-B uncertain items is
    redundant (near-duplicates around one decision boundary); this keeps the uncertainty while
    spreading the batch.  ``B`` is ``batch_size`` (else ``n``): that batch comes first, ordered
    by uncertainty, and the rest of the ranking follows by uncertainty.  Falls back to
    ``coverage`` without a model.
    """
    if not has_model(model):
        return coverage(model, X_pool, n, batch_size=batch_size, random_state=random_state,
                        **context)
    rng = rng_from(random_state)
    uncertainty = 1.0 - block_scores(classifier_margin, model, X_pool)
    return rank_diverse(X_pool, uncertainty, n, batch_size, rng)


def rank_diverse(X_pool: np.ndarray, uncertainty: np.ndarray, n: int, batch_size: int | None,
                 rng: np.random.Generator) -> np.ndarray:
    """Rank by any per-item ``uncertainty`` as :func:`diversity` does: a diverse first batch of
    ``batch_size`` (Zhdanov 2019), then the rest by uncertainty.  Shared with the joint
    (multi-set) strategy, :mod:`worker.ml.joint_strategies`."""
    N = len(X_pool)
    n = min(n, N)
    b = batch_of(n, batch_size)
    batch = _diverse_batch(X_pool, uncertainty, b, rng)
    if len(batch) >= n:
        return batch[:n]
    rest = np.ones(N, dtype=bool)
    rest[batch] = False
    rest_idx = np.flatnonzero(rest)
    return np.concatenate([batch, rest_idx[top(uncertainty[rest_idx], n - len(batch), rng)]])


def _diverse_batch(X_pool: np.ndarray, uncertainty: np.ndarray, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Zhdanov's batch of ``n``: see :func:`diversity`."""
    N = len(X_pool)
    cand = top(uncertainty, min(N, BETA * n), rng)
    if len(cand) <= n:
        return cand
    cand = np.sort(cand)
    (Xc,) = project(X_pool[cand], rng=rng)
    w = uncertainty[cand] + 1e-6
    labels, centres = kmeans(Xc, n, rng, sample_weight=w)
    chosen: list[int] = []
    for c in range(centres.shape[0]):
        idx = np.flatnonzero(labels == c)
        if len(idx):
            d = ((Xc[idx] - centres[c]) ** 2).sum(axis=1)
            chosen.append(int(cand[idx[np.argmin(d)]]))
    chosen_arr = np.unique(np.asarray(chosen, dtype=np.int64))
    chosen_arr = chosen_arr[top(uncertainty[chosen_arr], len(chosen_arr), rng)]
    if len(chosen_arr) < n:  # empty clusters: top up with the most uncertain remaining ones
        rest = np.setdiff1d(cand, chosen_arr)
        extra = rest[top(uncertainty[rest], n - len(chosen_arr), rng)]
        chosen_arr = np.concatenate([chosen_arr, extra])
    return chosen_arr[:n]


def _margins(P: np.ndarray) -> np.ndarray:
    """p(top class) - p(second class), per row (1.0 for a one-column model)."""
    if P.shape[1] < 2:
        return np.ones(len(P))
    top2 = np.partition(P, P.shape[1] - 2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _proba(model: Any, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba`` block by block (bounded memory on huge pools)."""
    blocks = [model.predict_proba(X[s : s + SCORE_BLOCK]) for s in range(0, len(X), SCORE_BLOCK)]
    return np.concatenate(blocks) if blocks else np.zeros((0, len(model.classes_)))


def _batch_then_margin(batch: np.ndarray, margin: np.ndarray, n: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``batch`` (smallest margin first), then the rest of the ranking by smallest margin."""
    batch = batch[np.argsort(margin[batch], kind="stable")]
    if len(batch) >= n:
        return batch[:n]
    rest = np.ones(len(margin), dtype=bool)
    rest[batch] = False
    rest_idx = np.flatnonzero(rest)
    return np.concatenate([batch, rest_idx[top(-margin[rest_idx], n - len(batch), rng)]])


def badge(model: Any, X_pool: np.ndarray, n: int, *, batch_size: int | None = None,
          random_state: RandomState = None, **context: Any) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding on the head's gradient embeddings.

    For multinomial logistic regression the gradient of the loss at the predicted label is
    ``g(x) = (p(x) - e_yhat) (x) [x, 1]``: its length grows with the uncertainty, and distances
    between gradients separate items that would move the head differently.  k-means++ seeding
    on them picks a batch that is uncertain *and* diverse, with no candidate count to tune.
    ``x`` is the embedding as the head sees it (unit rows, centred, unit RMS norm: CL2N), on a
    uniform subsample of at most ``MAX_BADGE_POINTS`` items; distances use the identity
    ``<g_i, g_j> = <a_i, a_j> (<x_i, x_j> + 1)``, so the gradients (C x d each) are never built.
    The batch of ``batch_size`` comes first, then the rest by margin.  Falls back to
    ``coverage`` without a model.
    """
    if not has_model(model):
        return coverage(model, X_pool, n, batch_size=batch_size, random_state=random_state,
                        **context)
    rng = rng_from(random_state)
    N = len(X_pool)
    n = min(n, N)
    P = _proba(model, X_pool)
    margin = _margins(P)
    sub = subsample(N, MAX_BADGE_POINTS, rng)
    F = unit_rows(X_pool[sub])
    F -= F.mean(axis=0)
    F /= max(float(np.sqrt((F * F).sum(axis=1).mean())), 1e-12)
    A = P[sub].copy()
    A[np.arange(len(sub)), A.argmax(axis=1)] -= 1.0
    g2 = (A * A).sum(axis=1) * ((F * F).sum(axis=1) + 1.0)  # squared gradient lengths
    b = batch_of(n, batch_size)
    chosen = [int(np.argmax(g2))]  # BADGE starts from the largest gradient
    d2 = np.full(len(sub), np.inf)
    while True:
        i = chosen[-1]
        di = g2 + g2[i] - 2.0 * (A @ A[i]) * (F @ F[i] + 1.0)
        d2 = np.minimum(d2, np.maximum(di, 0.0))
        d2[chosen] = 0.0
        total = float(d2.sum())
        if len(chosen) >= b or total <= 0.0:
            break
        chosen.append(int(rng.choice(len(sub), p=d2 / total)))
    return _batch_then_margin(sub[np.asarray(chosen, dtype=np.int64)], margin, n, rng)


def balanced(model: Any, X_pool: np.ndarray, n: int, *, batch_size: int | None = None,
             random_state: RandomState = None, **context: Any) -> np.ndarray:
    """Class-balanced uncertainty: Balanced Selection (Emam et al. 2021, "Active learning at
    the ImageNet scale").

    For each class ``c`` the items nearest *its* decision boundary, ``|p_c - max_{j != c} p_j|``
    smallest, taken round robin over the classes, the class with the fewest labels first.  Plain
    margin sampling spends its labels on the few most confused classes and, on skewed pools, on
    the big ones; this gives every known class its share of boundary items in every batch.
    Falls back to ``coverage`` without a model.
    """
    if not has_model(model):
        return coverage(model, X_pool, n, batch_size=batch_size, random_state=random_state,
                        **context)
    rng = rng_from(random_state)
    N = len(X_pool)
    n = min(n, N)
    P = _proba(model, X_pool)
    C = P.shape[1]
    top2 = np.partition(P, C - 2, axis=1)[:, -2:]
    first, second = top2[:, 1], top2[:, 0]
    k = min(N, 3 * (n // C + 1) + 10)  # per class: enough to survive picks by other classes
    lists = []
    for c in range(C):
        rival = np.where(P[:, c] >= first, second, first)
        lists.append(top(-np.abs(P[:, c] - rival), k, rng))
    counts = np.asarray(getattr(model, "class_counts_", np.ones(C)))
    order = np.lexsort((rng.random(C), counts))  # fewest labels first, random among ties
    taken = np.zeros(N, dtype=bool)
    chosen: list[int] = []
    pos = [0] * C
    while len(chosen) < n:
        moved = False
        for c in order:
            lst = lists[c]
            while pos[c] < len(lst) and taken[lst[pos[c]]]:
                pos[c] += 1
            if pos[c] < len(lst) and len(chosen) < n:
                taken[lst[pos[c]]] = True
                chosen.append(int(lst[pos[c]]))
                moved = True
        if not moved:
            break
    if len(chosen) < n:  # every list used up: the rest by margin
        rest = np.flatnonzero(~taken)
        chosen += rest[top(-_margins(P[rest]), n - len(chosen), rng)].tolist()
    return np.asarray(chosen, dtype=np.int64)
