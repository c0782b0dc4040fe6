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

Where they live: this module holds the registry, :func:`select`, ``random``, the plain
uncertainty measures and ``auto``; :mod:`worker.ml.coverage` the cold start (TypiClust);
:mod:`worker.ml.batch_selection` the batch-aware uncertainty strategies; :mod:`worker.ml.ranking`
their shared building blocks.  Nothing is O(N^2): scores are computed block-wise, clustering
runs on bounded subsamples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from worker.ml.batch_selection import badge, balanced, diversity
from worker.ml.coverage import coverage
from worker.ml.modal_compat import classifier_entropy, classifier_margin, classifier_uncertainty
from worker.ml.ranking import RandomState, block_scores, fill, has_model, rng_from, top

QueryStrategy = Callable[..., np.ndarray]

#: ``auto`` uses ``coverage`` until there are this many labels per class (see :func:`auto`).
AUTO_LABELS_PER_CLASS = 5


# -- strategies ------------------------------------------------------------------------------
def random_sampling(model: Any, X_pool: np.ndarray, n: int, *,
                    random_state: RandomState = None, **_: Any) -> np.ndarray:
    """Uniform random sample: the baseline, and an unbiased audit sample."""
    rng = rng_from(random_state)
    N = len(X_pool)
    n = min(n, N)
    if n * 4 < N:
        return rng.choice(N, size=n, replace=False).astype(np.int64)
    return rng.permutation(N)[:n].astype(np.int64)


def _uncertainty_strategy(measure: Callable[..., np.ndarray], sign: float) -> QueryStrategy:
    def strategy(model: Any, X_pool: np.ndarray, n: int, *,
                 random_state: RandomState = None, **context: Any) -> np.ndarray:
        if not has_model(model):  # no model, or a single class: nothing to be uncertain about
            return coverage(model, X_pool, n, random_state=random_state, **context)
        rng = rng_from(random_state)
        return top(sign * block_scores(measure, model, X_pool), n, rng)

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
    if n_classes is None and has_model(model):
        n_classes = len(model.classes_)
    name = auto_choice(n_labeled, n_classes) if has_model(model) else "coverage"
    return STRATEGIES[name](model, X_pool, n, X_labeled=X_labeled, n_classes=n_classes,
                            random_state=random_state, **context)


STRATEGIES: dict[str, QueryStrategy] = {
    "random": random_sampling,
    "least_confident": least_confident,
    "margin": margin,
    "entropy": entropy,
    "diversity": diversity,
    "badge": badge,
    "balanced": balanced,
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
    rng = rng_from(random_state)
    idx = np.asarray(fn(model, X_pool, n, X_labeled=X_labeled, random_state=rng, **context),
                     dtype=np.int64)
    # Defensive: distinct, in range, exactly n — whatever a (future) strategy returned.
    idx = idx[(idx >= 0) & (idx < N)]
    _, first = np.unique(idx, return_index=True)
    idx = idx[np.sort(first)]
    return fill(list(idx[:n]), N, n, rng)
