"""Cold-start selection by typicality and coverage: TypiClust (Hacohen, Dekel & Weinshall 2022).

Needs no model: with few labels the best bet is to label *typical* items that *cover* the
embedding space.  Clustering runs on a uniform subsample of at most ``MAX_CLUSTER_POINTS`` items
(a uniform subsample of a 1M pool has the same typical regions as the pool), and
nearest-neighbour typicality is computed inside one cluster at a time on at most
``MAX_TYPICALITY_POINTS`` members: nothing is O(N^2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.ml.ranking import (
    SCORE_BLOCK,
    RandomState,
    batch_of,
    fill,
    has_model,
    kmeans,
    project,
    rng_from,
    subsample,
    top,
)

#: Clustering runs on at most this many items (uniform subsample of the pool) plus the labels.
MAX_CLUSTER_POINTS = 20_000
#: TypiClust's cap on the number of clusters (Hacohen et al. 2022, appendix).
MAX_CLUSTERS = 500
#: TypiClust ignores clusters smaller than this (outliers make poor representatives).
MIN_CLUSTER_SIZE = 5
#: Neighbours used for typicality (TypiClust uses 20).
TYPICALITY_K = 20
#: Typicality inside a cluster is estimated on at most this many of its members.
MAX_TYPICALITY_POINTS = 2_000


def coverage(model: Any, X_pool: np.ndarray, n: int, *, X_labeled: np.ndarray | None = None,
             batch_size: int | None = None, random_state: RandomState = None,
             **_: Any) -> np.ndarray:
    """Cold start by typicality and coverage: TypiClust (Hacohen, Dekel & Weinshall 2022).

    Cluster labeled + unlabeled embeddings into ``min(L + B, 500)`` clusters (``B`` =
    ``batch_size``, else ``n``); repeatedly take the cluster holding the fewest labels (ties:
    the largest), and from it the most *typical* unlabeled item — the inverse mean distance to
    its 20 nearest neighbours.  Labels thus land in dense, not-yet-covered regions, which is
    what a weak head needs most.  Needs no model.

    With a model (>= 2 classes), among clusters holding equally few labels the one whose
    predicted class (the majority prediction of its members) has the fewest labels goes first,
    then the biggest: class-balanced selection from predicted labels (Bengar et al. 2022,
    "Class-balanced active learning for image classification"; Emam et al. 2021).  Embedding
    clusters need not follow the classes (flowers: background and framing; fashion colours:
    garment type), and plain TypiClust then piles the next labels onto the classes already
    labeled most.
    """
    rng = rng_from(random_state)
    N = len(X_pool)
    n = min(n, N)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    sub = subsample(N, MAX_CLUSTER_POINTS, rng)
    if X_labeled is not None and len(X_labeled):
        lab = subsample(len(X_labeled), MAX_CLUSTER_POINTS, rng)
        Xu, Xl = project(X_pool[sub], np.asarray(X_labeled)[lab], rng=rng)
    else:
        (Xu,) = project(X_pool[sub], rng=rng)
        Xl = np.zeros((0, Xu.shape[1]), dtype=np.float32)
    X_all = np.concatenate([Xu, Xl]) if len(Xl) else Xu
    L = len(X_labeled) if X_labeled is not None else 0
    k = min(L + batch_of(n, batch_size), MAX_CLUSTERS, len(X_all))
    labels, _ = kmeans(X_all, k, rng)
    u_labels, l_labels = labels[: len(Xu)], labels[len(Xu) :]
    sizes = np.bincount(labels, minlength=k)
    n_lab = np.bincount(l_labels, minlength=k).astype(np.int64)
    members = [np.flatnonzero(u_labels == c) for c in range(k)]
    typical_order: dict[int, np.ndarray] = {}
    used = [0] * k
    eligible = sizes >= min(MIN_CLUSTER_SIZE, max(1, len(X_all) // max(k, 1)))
    cluster_class, class_labels = _predicted_classes(model, X_pool[sub], members, k)
    chosen: list[int] = []
    while len(chosen) < n:
        open_ = eligible & (np.array(used) < np.array([len(m) for m in members]))
        if not open_.any():
            break
        # fewest labels first, then the rarest predicted class, then biggest; random among ties
        key = np.lexsort((rng.random(k), -sizes, class_labels[cluster_class], n_lab))
        c = int(next(i for i in key if open_[i]))
        if c not in typical_order:
            typical_order[c] = _typicality_order(X_all, labels, c, members[c], rng)
        chosen.append(int(sub[members[c][typical_order[c][used[c]]]]))
        used[c] += 1
        n_lab[c] += 1
        class_labels[cluster_class[c]] += 1
    return fill(chosen, N, n, rng)


def _predicted_classes(model: Any, X: np.ndarray, members: list[np.ndarray],
                       k: int) -> tuple[np.ndarray, np.ndarray]:
    """(majority predicted class of each cluster, labels per class so far) for class balance.

    Without a model of >= 2 classes every cluster gets class 0 with 0 labels: no effect.
    """
    counts = getattr(model, "class_counts_", None)
    if not has_model(model) or counts is None:
        return np.zeros(k, dtype=np.int64), np.zeros(1, dtype=np.int64)
    pred = np.concatenate([model.predict_proba(X[s : s + SCORE_BLOCK]).argmax(axis=1)
                           for s in range(0, len(X), SCORE_BLOCK)])
    n_classes = len(counts)
    cluster_class = np.array([np.bincount(pred[m], minlength=n_classes).argmax() if len(m) else 0
                              for m in members], dtype=np.int64)
    return cluster_class, np.asarray(counts, dtype=np.int64).copy()


def _typicality_order(X_all: np.ndarray, labels: np.ndarray, c: int, members: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Order of ``members`` (unlabeled, of cluster ``c``) by decreasing typicality.

    Typicality(x) = 1 / mean distance to the K nearest points of the same cluster (labeled ones
    included, as in TypiClust).  In big clusters it is estimated on a random subsample of
    ``MAX_TYPICALITY_POINTS`` members, and the others follow in random order.
    """
    everyone = np.flatnonzero(labels == c)
    ref = everyone if len(everyone) <= MAX_TYPICALITY_POINTS else rng.choice(
        everyone, MAX_TYPICALITY_POINTS, replace=False)
    cand_pos = np.arange(len(members))
    if len(members) > MAX_TYPICALITY_POINTS:
        cand_pos = rng.choice(len(members), MAX_TYPICALITY_POINTS, replace=False)
    C = X_all[members[cand_pos]]
    R = X_all[ref]
    # squared distances via the dot-product identity; at most 2000 x 2000
    sq = (C * C).sum(1)[:, None] + (R * R).sum(1)[None, :] - 2.0 * (C @ R.T)
    d = np.sqrt(np.maximum(sq, 0.0))
    kk = min(TYPICALITY_K + 1, d.shape[1])  # +1: a point is its own nearest neighbour
    near = np.partition(d, kk - 1, axis=1)[:, :kk] if kk < d.shape[1] else d
    typicality = 1.0 / (near.sum(axis=1) / max(kk - 1, 1) + 1e-8)
    ranked = cand_pos[top(typicality, len(typicality), rng)]
    if len(cand_pos) < len(members):
        rest = np.setdiff1d(np.arange(len(members)), cand_pos)
        ranked = np.concatenate([ranked, rng.permutation(rest)])
    return ranked
