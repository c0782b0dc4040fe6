"""Choosing items for all label sets at once: one annotator visit labels every set.

Strategies here take a *multi-set* model (:class:`~worker.ml.multitask.IndependentHeads` or
:class:`~worker.ml.multitask.MultiTaskHead`, or ``None`` before the first retrain) and keep the
single-set signature ``(model, X_pool, n, **context) -> indices``, best first.  Context:
``label_sets`` (the project's :class:`~worker.ml.label_sets.LabelSet` list), ``X_labeled``,
``batch_size``, ``random_state``.

:func:`joint_auto` is ``auto`` for several sets.  Its informativeness of an item is the mean,
over the sets that have a model, of the set's uncertainty *rank-normalised over the pool* — the
rank combination of Reichart, Tomanek, Hahn & Rappoport 2008 ("Multi-task active learning for
linguistic annotations"): each set's uncertainty becomes its percentile among the pool's items,
so a set that is uncertain everywhere (a hard, barely visible attribute) cannot drown the
others, and an item ranks high when it is uncertain in *several* sets.  Per set, uncertainty is
1 - margin for single-choice sets (Scheffer et al. 2001) and, for multi-label sets, the mean
over tags of the binary uncertainty 1 - |2p - 1| (each tag a yes/no question).  Cold start and
batch diversity are those of the single-set ``auto``: TypiClust coverage of the shared embedding
space while labels are few, then a diverse batch (Zhdanov 2019) of the most informative items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from worker.ml.batch_selection import rank_diverse
from worker.ml.coverage import coverage
from worker.ml.label_sets import LabelSet
from worker.ml.ranking import SCORE_BLOCK, RandomState, has_model, rng_from
from worker.ml.strategies import AUTO_LABELS_PER_CLASS, random_sampling, select


def set_uncertainty(P: np.ndarray, multi: bool) -> np.ndarray:
    """Uncertainty in [0, 1] per row of one set's probabilities ``P`` (see the module doc)."""
    P = np.asarray(P, dtype=np.float64)
    if multi:
        return (1.0 - np.abs(2.0 * P - 1.0)).mean(axis=1) if P.shape[1] else np.zeros(len(P))
    if P.shape[1] < 2:
        return np.zeros(len(P))
    top2 = np.partition(P, P.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def rank_normalise(u: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1] of each score among the pool (ties share their mean rank)."""
    return rankdata(u, method="average") / max(len(u), 1)


def _usable(model: Any, name: str) -> Any:
    """The set's model when it can be uncertain (fitted; >= 2 classes or a multi-label set)."""
    m = model.set_model(name) if model is not None else None
    if m is None:
        return None
    return m if has_model(m) or getattr(m, "n_tags_", 0) or getattr(m, "is_multi", False) \
        else None


def joint_uncertainty(model: Any, X_pool: np.ndarray, label_sets: Sequence[LabelSet]
                      ) -> np.ndarray | None:
    """Mean over sets of rank-normalised uncertainty; ``None`` when no set has a model."""
    parts = []
    for s in label_sets:
        m = _usable(model, s.name)
        if m is None:
            continue
        u = np.concatenate([set_uncertainty(m.predict_proba(X_pool[i : i + SCORE_BLOCK]),
                                            s.is_multi)
                            for i in range(0, len(X_pool), SCORE_BLOCK)])
        parts.append(rank_normalise(u))
    return np.mean(parts, axis=0) if parts else None


def joint_n_classes(label_sets: Sequence[LabelSet]) -> int:
    """Classes of the largest set: ``joint_auto`` leaves the cold start when every set could
    have ``AUTO_LABELS_PER_CLASS`` labels per class (tags count as classes)."""
    return max((len(s.classes) for s in label_sets), default=0)


def joint_auto(model: Any, X_pool: np.ndarray, n: int, *,
               label_sets: Sequence[LabelSet] = (), X_labeled: np.ndarray | None = None,
               batch_size: int | None = None, random_state: RandomState = None,
               **_: Any) -> np.ndarray:
    """Default for several sets: coverage while labels are few, then diverse joint uncertainty.

    The switch is the single-set ``auto`` rule applied to the set with the most classes.
    """
    rng = rng_from(random_state)
    n_labeled = 0 if X_labeled is None else len(X_labeled)
    u = None
    if n_labeled >= AUTO_LABELS_PER_CLASS * joint_n_classes(label_sets):
        u = joint_uncertainty(model, X_pool, label_sets)
    if u is None:
        return coverage(None, X_pool, n, X_labeled=X_labeled, batch_size=batch_size,
                        random_state=rng)
    return rank_diverse(X_pool, u, n, batch_size, rng)


def for_one_set(name: str, strategy: str = "auto") -> Callable[..., np.ndarray]:
    """Selection for set ``name`` alone: the single-set ``strategy`` on that set's model.

    The baseline the joint strategy must beat on the other sets (and a project option when
    one set matters most).
    """

    def chosen(model: Any, X_pool: np.ndarray, n: int, *, label_sets: Sequence[LabelSet] = (),
               X_labeled: np.ndarray | None = None, random_state: RandomState = None,
               **context: Any) -> np.ndarray:
        s = next((s for s in label_sets if s.name == name), None)
        if s is None:
            raise ValueError(f"no label set {name!r}")
        m = model.set_model(name) if model is not None else None
        return select(strategy, m, X_pool, n, X_labeled=X_labeled, random_state=random_state,
                      n_classes=len(s.classes), **context)

    chosen.__name__ = f"for_one_set_{name}"
    return chosen


JOINT_STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "auto": joint_auto,
    "random": random_sampling,
}


def joint_select(strategy: str | Callable[..., np.ndarray], model: Any, X_pool: np.ndarray,
                 n: int, *, label_sets: Sequence[LabelSet], X_labeled: np.ndarray | None = None,
                 random_state: RandomState = None, **context: Any) -> np.ndarray:
    """``n`` distinct indices into ``X_pool``, best first, for all ``label_sets`` at once.

    ``strategy``: a name of :data:`JOINT_STRATEGIES`, ``"set:NAME"`` (selection for one set
    only, :func:`for_one_set`) or a function.
    """
    if callable(strategy):
        fn = strategy
    elif strategy.startswith("set:"):
        fn = for_one_set(strategy[4:])
    elif strategy in JOINT_STRATEGIES:
        fn = JOINT_STRATEGIES[strategy]
    else:
        raise ValueError(f"unknown joint strategy {strategy!r}; choose one of: "
                         f"{', '.join(JOINT_STRATEGIES)} or set:NAME")
    N = len(X_pool)
    n = min(int(n), N)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = rng_from(random_state)
    idx = np.asarray(fn(model, X_pool, n, label_sets=label_sets, X_labeled=X_labeled,
                        random_state=rng, **context), dtype=np.int64)
    _, first = np.unique(idx, return_index=True)
    return idx[np.sort(first)][:n]
