"""Query strategies: which unlabeled items an annotator should label next.

Each strategy is a plain function ``(model, X_pool, n, **context) -> indices`` in modAL's style,
returning ``n`` distinct indices into ``X_pool`` ordered by priority (first = label first).
``context`` may hold ``X_labeled`` (embeddings already labeled), ``n_classes`` (classes the
project has, labeled or not), ``batch_size`` and ``random_state``.  Unknown context keys are
ignored.

``batch_size``: how many of the ranked items will be labeled before the next retrain re-ranks
(the project's ``retrain_every``).  The product ranks a few hundred items so annotators never
wait, but only the first ``batch_size`` of them are labeled with this ranking; so batch-aware
strategies make every prefix of ``batch_size`` items a good batch on its own, instead of
optimising one batch of ``n``.

Why several: on frozen pretrained features, plain uncertainty sampling is often *worse* than
random when labels are few — the head is too weak to know what it does not know, and a batch of
the most uncertain items is redundant (Hacohen, Dekel & Weinshall 2022, "Active Learning on a
Budget", the "cold start" problem).  With few labels the best bet is to label *typical* items
that *cover* the embedding space (``coverage``, TypiClust); once the head is decent,
uncertainty wins, provided the batch is diverse (``diversity``).  ``auto`` switches between the
two by a rule that depends only on labels per class.

Scalability: nothing here is O(N^2).  Scores are computed block-wise, clustering runs on a
uniform subsample of at most ``MAX_CLUSTER_POINTS`` items (a uniform subsample of a 1M pool has
the same typical regions as the pool), and nearest-neighbour typicality is computed inside one
cluster at a time on at most ``MAX_TYPICALITY_POINTS`` members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA

from worker.ml.modal_compat import classifier_entropy, classifier_margin, classifier_uncertainty

QueryStrategy = Callable[..., np.ndarray]

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
#: Candidate pre-filter of the diversity strategy: the ``BETA * n`` most uncertain items
#: (Zhdanov 2019 uses beta = 10).
BETA = 10
#: ``auto`` uses ``coverage`` until there are this many labels per class (see :func:`auto`).
AUTO_LABELS_PER_CLASS = 5
#: Distances for clustering/typicality are computed after PCA to this many dimensions: k-means
#: and kNN cost scale with the dimension, and 64 principal components keep the cluster structure
#: of CNN embeddings while making a 500-cluster k-means ~20x cheaper than in 1280 dimensions.
PCA_DIMS = 64
#: Rows per block when scoring a large pool.
SCORE_BLOCK = 65_536

RandomState = int | np.random.Generator | None


# -- helpers ---------------------------------------------------------------------------------
def _rng(random_state: RandomState) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else (
        np.random.default_rng(random_state)
    )


def _seed(rng: np.random.Generator) -> int:
    """An int seed for scikit-learn estimators, drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def _has_model(model: Any) -> bool:
    """True when ``model`` is fitted on >= 2 classes, i.e. its uncertainty means something."""
    classes = getattr(model, "classes_", None)
    return model is not None and classes is not None and len(classes) >= 2


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """float32 copy with unit-length rows: cosine geometry, as is usual for CNN embeddings."""
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _project(X_fit: np.ndarray, *others: np.ndarray, rng: np.random.Generator,
             dims: int = PCA_DIMS) -> list[np.ndarray]:
    """Unit rows, then PCA (fitted on ``X_fit``) to ``dims`` dimensions; float32 outputs."""
    parts = [_unit_rows(X_fit)] + [_unit_rows(o) for o in others]
    if parts[0].shape[1] <= dims or len(parts[0]) <= dims:
        return parts
    pca = PCA(dims, svd_solver="randomized", random_state=_seed(rng)).fit(parts[0])
    return [pca.transform(p).astype(np.float32) if len(p) else
            np.zeros((0, dims), dtype=np.float32) for p in parts]


def _top(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
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


def _block_scores(fn: Callable[..., np.ndarray], model: Any, X: np.ndarray) -> np.ndarray:
    """Apply a modAL ``classifier_*`` measure block by block (bounded memory on huge pools)."""
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), SCORE_BLOCK):
        block = X[start : start + SCORE_BLOCK]
        out[start : start + len(block)] = fn(model, block)
    return out


def _subsample(N: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All indices when ``N <= cap``, else ``cap`` sorted uniform ones (sorted: memmap-friendly)."""
    if N <= cap:
        return np.arange(N)
    return np.sort(rng.choice(N, size=cap, replace=False))


def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator,
            sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centres): exact k-means for few clusters, mini-batch beyond (as TypiClust)."""
    k = max(1, min(k, len(X)))
    if k <= 50:
        km = KMeans(k, n_init=1, random_state=_seed(rng), max_iter=100)
    else:
        km = MiniBatchKMeans(k, n_init=1, random_state=_seed(rng), batch_size=2048,
                             max_iter=50)
    labels = km.fit_predict(X, sample_weight=sample_weight)
    return labels, km.cluster_centers_


def _fill(chosen: list[int], N: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pad ``chosen`` with random unchosen indices up to ``n`` (keeps order, stays distinct)."""
    out = np.asarray(chosen, dtype=np.int64)
    if len(out) < n:
        mask = np.ones(N, dtype=bool)
        mask[out] = False
        rest = np.flatnonzero(mask)
        out = np.concatenate([out, rng.permutation(rest)[: n - len(out)]])
    return out


# -- strategies ------------------------------------------------------------------------------
def random_sampling(model: Any, X_pool: np.ndarray, n: int, *,
                    random_state: RandomState = None, **_: Any) -> np.ndarray:
    """Uniform random sample: the baseline, and an unbiased audit sample."""
    rng = _rng(random_state)
    N = len(X_pool)
    n = min(n, N)
    if n * 4 < N:
        return rng.choice(N, size=n, replace=False).astype(np.int64)
    return rng.permutation(N)[:n].astype(np.int64)


def _uncertainty_strategy(measure: Callable[..., np.ndarray], sign: float) -> QueryStrategy:
    def strategy(model: Any, X_pool: np.ndarray, n: int, *,
                 random_state: RandomState = None, **context: Any) -> np.ndarray:
        if not _has_model(model):  # no model, or a single class: nothing to be uncertain about
            return coverage(model, X_pool, n, random_state=random_state, **context)
        rng = _rng(random_state)
        return _top(sign * _block_scores(measure, model, X_pool), n, rng)

    return strategy


least_confident = _uncertainty_strategy(classifier_uncertainty, 1.0)
least_confident.__name__ = "least_confident"
least_confident.__doc__ = """Least confident first: 1 - max p (modAL ``classifier_uncertainty``;
Lewis & Gale 1994).  Falls back to ``coverage`` without a model of >= 2 classes."""

margin = _uncertainty_strategy(classifier_margin, -1.0)
margin.__name__ = "margin"
margin.__doc__ = """Smallest margin between the two most probable classes first (modAL
``classifier_margin``; Scheffer et al. 2001).  Falls back to ``coverage`` without a model."""

entropy = _uncertainty_strategy(classifier_entropy, 1.0)
entropy.__name__ = "entropy"
entropy.__doc__ = """Highest predictive entropy first (modAL ``classifier_entropy``;
Shannon 1948 / Settles 2009).  Falls back to ``coverage`` without a model."""


def coverage(model: Any, X_pool: np.ndarray, n: int, *, X_labeled: np.ndarray | None = None,
             batch_size: int | None = None, random_state: RandomState = None,
             **_: Any) -> np.ndarray:
    """Cold start by typicality and coverage: TypiClust (Hacohen, Dekel & Weinshall 2022).

    Cluster labeled + unlabeled embeddings into ``min(L + B, 500)`` clusters (``B`` =
    ``batch_size``, else ``n``); repeatedly take the cluster holding the fewest labels (ties:
    the largest), and from it the most *typical* unlabeled item — the inverse mean distance to
    its 20 nearest neighbours.  Labels thus land in dense, not-yet-covered regions, which is
    what a weak head needs most.  Needs no model.
    """
    rng = _rng(random_state)
    N = len(X_pool)
    n = min(n, N)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    sub = _subsample(N, MAX_CLUSTER_POINTS, rng)
    if X_labeled is not None and len(X_labeled):
        lab = _subsample(len(X_labeled), MAX_CLUSTER_POINTS, rng)
        Xu, Xl = _project(X_pool[sub], np.asarray(X_labeled)[lab], rng=rng)
    else:
        (Xu,) = _project(X_pool[sub], rng=rng)
        Xl = np.zeros((0, Xu.shape[1]), dtype=np.float32)
    X_all = np.concatenate([Xu, Xl]) if len(Xl) else Xu
    L = len(X_labeled) if X_labeled is not None else 0
    k = min(L + _batch(n, batch_size), MAX_CLUSTERS, len(X_all))
    labels, _ = _kmeans(X_all, k, rng)
    u_labels, l_labels = labels[: len(Xu)], labels[len(Xu) :]
    sizes = np.bincount(labels, minlength=k)
    n_lab = np.bincount(l_labels, minlength=k).astype(np.int64)
    members = [np.flatnonzero(u_labels == c) for c in range(k)]
    typical_order: dict[int, np.ndarray] = {}
    used = [0] * k
    eligible = sizes >= min(MIN_CLUSTER_SIZE, max(1, len(X_all) // max(k, 1)))
    chosen: list[int] = []
    while len(chosen) < n:
        open_ = eligible & (np.array(used) < np.array([len(m) for m in members]))
        if not open_.any():
            break
        # fewest labels first, then biggest cluster; random among exact ties
        key = np.lexsort((rng.random(k), -sizes, n_lab))
        c = int(next(i for i in key if open_[i]))
        if c not in typical_order:
            typical_order[c] = _typicality_order(X_all, labels, c, members[c], rng)
        chosen.append(int(sub[members[c][typical_order[c][used[c]]]]))
        used[c] += 1
        n_lab[c] += 1
    return _fill(chosen, N, n, rng)


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
    ranked = cand_pos[_top(typicality, len(typicality), rng)]
    if len(cand_pos) < len(members):
        rest = np.setdiff1d(np.arange(len(members)), cand_pos)
        ranked = np.concatenate([ranked, rng.permutation(rest)])
    return ranked


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
    if not _has_model(model):
        return coverage(model, X_pool, n, batch_size=batch_size, random_state=random_state,
                        **context)
    rng = _rng(random_state)
    N = len(X_pool)
    n = min(n, N)
    uncertainty = 1.0 - _block_scores(classifier_margin, model, X_pool)
    b = _batch(n, batch_size)
    batch = _diverse_batch(X_pool, uncertainty, b, rng)
    if len(batch) >= n:
        return batch[:n]
    rest = np.ones(N, dtype=bool)
    rest[batch] = False
    rest_idx = np.flatnonzero(rest)
    return np.concatenate([batch, rest_idx[_top(uncertainty[rest_idx], n - len(batch), rng)]])


def _batch(n: int, batch_size: int | None) -> int:
    """The size of the batch a ranking of ``n`` is optimised for (see the module docstring)."""
    return n if not batch_size or batch_size <= 0 else min(n, int(batch_size))


def _diverse_batch(X_pool: np.ndarray, uncertainty: np.ndarray, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Zhdanov's batch of ``n``: see :func:`diversity`."""
    N = len(X_pool)
    cand = _top(uncertainty, min(N, BETA * n), rng)
    if len(cand) <= n:
        return cand
    cand = np.sort(cand)
    (Xc,) = _project(X_pool[cand], rng=rng)
    w = uncertainty[cand] + 1e-6
    labels, centres = _kmeans(Xc, n, rng, sample_weight=w)
    chosen: list[int] = []
    for c in range(centres.shape[0]):
        idx = np.flatnonzero(labels == c)
        if len(idx):
            d = ((Xc[idx] - centres[c]) ** 2).sum(axis=1)
            chosen.append(int(cand[idx[np.argmin(d)]]))
    chosen_arr = np.unique(np.asarray(chosen, dtype=np.int64))
    chosen_arr = chosen_arr[_top(uncertainty[chosen_arr], len(chosen_arr), rng)]
    if len(chosen_arr) < n:  # empty clusters: top up with the most uncertain remaining ones
        rest = np.setdiff1d(cand, chosen_arr)
        extra = rest[_top(uncertainty[rest], n - len(chosen_arr), rng)]
        chosen_arr = np.concatenate([chosen_arr, extra])
    return chosen_arr[:n]


def auto_choice(n_labeled: int, n_classes: int | None) -> str:
    """The strategy ``auto`` delegates to: see :func:`auto`."""
    if n_classes is None or n_classes < 2:
        return "coverage"
    return "coverage" if n_labeled < AUTO_LABELS_PER_CLASS * n_classes else "diversity"


def auto(model: Any, X_pool: np.ndarray, n: int, *, X_labeled: np.ndarray | None = None,
         n_classes: int | None = None, random_state: RandomState = None,
         **context: Any) -> np.ndarray:
    """Default: ``coverage`` while labels are few, then ``diversity`` (uncertainty + spread).

    Rule: coverage until there are ``AUTO_LABELS_PER_CLASS`` (5) labels per class, counting
    the project's classes (``n_classes``; else the classes the model has seen).  Hacohen et al.
    2022 show typicality wins over uncertainty in the "low budget" regime of a few labels per
    class and loses beyond it; the switch point scales with the number of classes, not with a
    dataset-specific constant.  Without a model of >= 2 classes it is always coverage.
    """
    n_labeled = 0 if X_labeled is None else len(X_labeled)
    if n_classes is None and _has_model(model):
        n_classes = len(model.classes_)
    name = auto_choice(n_labeled, n_classes) if _has_model(model) else "coverage"
    return STRATEGIES[name](model, X_pool, n, X_labeled=X_labeled, n_classes=n_classes,
                            random_state=random_state, **context)


STRATEGIES: dict[str, QueryStrategy] = {
    "random": random_sampling,
    "least_confident": least_confident,
    "margin": margin,
    "entropy": entropy,
    "diversity": diversity,
    "coverage": coverage,
    "auto": auto,
}
DEFAULT_STRATEGY = "auto"


def get_strategy(name: str) -> QueryStrategy:
    """The strategy called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown query strategy {name!r}; choose one of: {', '.join(sorted(STRATEGIES))}"
        ) from None


def select(strategy: str, model: Any, X_pool: np.ndarray, n: int, *,
           X_labeled: np.ndarray | None = None, random_state: RandomState = None,
           **context: Any) -> np.ndarray:
    """``n`` distinct indices into ``X_pool`` (all of them if ``n >= len``), best first.

    ``model`` may be ``None`` (no model yet).  ``X_labeled``: embeddings already labeled.
    Extra ``context`` (e.g. ``n_classes``) is passed to the strategy.
    """
    fn = get_strategy(strategy)
    N = len(X_pool)
    n = min(int(n), N)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = _rng(random_state)
    idx = np.asarray(fn(model, X_pool, n, X_labeled=X_labeled, random_state=rng, **context),
                     dtype=np.int64)
    # Defensive: distinct, in range, exactly n — whatever a (future) strategy returned.
    idx = idx[(idx >= 0) & (idx < N)]
    _, first = np.unique(idx, return_index=True)
    idx = idx[np.sort(first)]
    return _fill(list(idx[:n]), N, n, rng)
