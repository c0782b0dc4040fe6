"""Building blocks of the query strategies: ranking by a score, padding, geometry, k-means.

Shared by :mod:`worker.ml.strategies`, :mod:`worker.ml.coverage` and
:mod:`worker.ml.batch_selection`.  All of it is bounded at huge pools: scores block by block,
partial selection before sorting, PCA and k-means on subsamples chosen by the callers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA

RandomState = int | np.random.Generator | None

#: Distances for clustering/typicality are computed after PCA to this many dimensions: k-means
#: and kNN cost scale with the dimension, and 64 principal components keep the cluster structure
#: of CNN embeddings while making a 500-cluster k-means ~20x cheaper than in 1280 dimensions.
PCA_DIMS = 64
#: Rows per block when scoring a large pool.
SCORE_BLOCK = 65_536


def rng_from(random_state: RandomState) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else (
        np.random.default_rng(random_state)
    )


def int_seed(rng: np.random.Generator) -> int:
    """An int seed for scikit-learn estimators, drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def has_model(model: Any) -> bool:
    """True when ``model`` is fitted on >= 2 classes, i.e. its uncertainty means something."""
    classes = getattr(model, "classes_", None)
    return model is not None and classes is not None and len(classes) >= 2


def unit_rows(X: np.ndarray) -> np.ndarray:
    """float32 copy with unit-length rows: cosine geometry, as is usual for CNN embeddings."""
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def project(X_fit: np.ndarray, *others: np.ndarray, rng: np.random.Generator,
            dims: int = PCA_DIMS) -> list[np.ndarray]:
    """Unit rows, then PCA (fitted on ``X_fit``) to ``dims`` dimensions; float32 outputs."""
    parts = [unit_rows(X_fit)] + [unit_rows(o) for o in others]
    if parts[0].shape[1] <= dims or len(parts[0]) <= dims:
        return parts
    pca = PCA(dims, svd_solver="randomized", random_state=int_seed(rng)).fit(parts[0])
    return [pca.transform(p).astype(np.float32) if len(p) else
            np.zeros((0, dims), dtype=np.float32) for p in parts]


def top(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``n`` largest scores, best first; ties broken at random."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    jitter = rng.random(len(scores))
    if n < len(scores):  # partial selection first: O(N), then sort only the survivors
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        cand = np.flatnonzero(scores >= kth)
    else:
        cand = np.arange(len(scores))
    order = np.lexsort((jitter[cand], -scores[cand]))
    return cand[order[:n]].astype(np.int64)


def block_scores(fn: Callable[..., np.ndarray], model: Any, X: np.ndarray) -> np.ndarray:
    """Apply a modAL ``classifier_*`` measure block by block (bounded memory on huge pools)."""
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), SCORE_BLOCK):
        block = X[start : start + SCORE_BLOCK]
        out[start : start + len(block)] = fn(model, block)
    return out


def subsample(N: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All indices when ``N <= cap``, else ``cap`` sorted uniform ones (sorted: memmap-friendly)."""
    if N <= cap:
        return np.arange(N)
    return np.sort(rng.choice(N, size=cap, replace=False))


def kmeans(X: np.ndarray, k: int, rng: np.random.Generator,
           sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres): exact k-means for few clusters, mini-batch beyond (as TypiClust)."""
    k = max(1, min(k, len(X)))
    if k <= 50:
        km = KMeans(k, n_init=1, random_state=int_seed(rng), max_iter=100)
    else:
        km = MiniBatchKMeans(k, n_init=1, random_state=int_seed(rng), batch_size=2048,
                             max_iter=50)
    labels = km.fit_predict(X, sample_weight=sample_weight)
    return labels, km.cluster_centers_


def fill(chosen: list[int], N: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pad ``chosen`` with random unchosen indices up to ``n`` (keeps order, stays distinct)."""
    out = np.asarray(chosen, dtype=np.int64)
    if len(out) < n:
        mask = np.ones(N, dtype=bool)
        mask[out] = False
        rest = np.flatnonzero(mask)
        out = np.concatenate([out, rng.permutation(rest)[: n - len(out)]])
    return out


def batch_of(n: int, batch_size: int | None) -> int:
    """The size of the batch a ranking of ``n`` is optimised for: ``batch_size`` (the project's
    ``retrain_every``: the items labeled before the next retrain re-ranks), else ``n``."""
    return n if not batch_size or batch_size <= 0 else min(n, int(batch_size))
