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
    RandomState,
    batch_of,
    block_scores,
    has_model,
    kmeans,
    project,
    rng_from,
    top,
)

#: Candidate pre-filter of the diversity strategy: the ``BETA * n`` most uncertain items
#: (Zhdanov 2019 uses beta = 10).
BETA = 10


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
    N = len(X_pool)
    n = min(n, N)
    uncertainty = 1.0 - block_scores(classifier_margin, model, X_pool)
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
