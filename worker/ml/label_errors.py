"""Likely label errors, confident-learning style (Northcutt, Jiang & Chuang 2021, JAIR 70).

The idea: a head that has *not* seen an item (K-fold cross-validation) predicts its class
probabilities; a label the out-of-fold model finds unlikely, while it is confident about another
class, is a candidate error. Confident learning makes "unlikely" and "confident" relative to each
class, because heads are more confident on easy classes than on hard ones:

* per-class threshold ``t_j`` = mean out-of-fold probability of class ``j`` over the items
  labelled ``j`` (the class's average self-confidence);
* an item labelled ``s`` counts toward the *confident joint* at ``(s, j*)``, where ``j*`` is the
  most probable class among those whose probability reaches their threshold;
* the off-diagonal entries of the confident joint (``j* != s``) are the *flagged* items — the
  ``confident_learning`` filter of the paper (cleanlab's ``filter_by="confident_learning"``);
* the list a person reviews holds the flagged items and, beside them, every item whose
  out-of-fold prediction (argmax) is not its given label, all ranked by self-confidence
  ``p[i, s_i]`` (lowest first; the paper's and cleanlab's default ``rank_by="self_confidence"``),
  ties broken by the normalised margin ``p[i, s_i] - max_{j != s_i} p[i, j]``.

Why the wider list: with few labels per class the heads are strongly regularised and their
probabilities flat, so a mislabelled item's true class often stays under its class threshold and
the strict filter misses it. Measured on real photos (clothing-small, EfficientNet-Lite0
embeddings, 6-10 classes x 25-50 photos, 10 % of labels flipped, 15 draws): the strict filter
lists 14 % of items and puts 72 % of the flipped ones in the top 2k (k = number flipped); the
wider list holds 28 % of items and puts 94 % (worst draw 80 %) in the top 2k. Ranking decides
what a reviewer sees first, and self-confidence ranks the flipped labels first either way.

No Django here: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from worker.ml.head import LogisticHead

__all__ = ["LabelIssues", "find_label_issues", "out_of_fold_proba", "per_class_thresholds"]


def out_of_fold_proba(
    X: np.ndarray,
    y: np.ndarray,
    *,
    C: float | None = None,
    n_splits: int = 5,
    random_state: int = 0,
    classes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold class probabilities from the product's head: ``(proba (n, k), classes (k,))``.

    Each row comes from a :class:`LogisticHead` fitted on the other folds. With ``C`` given the
    head is fitted once per fold (no inner search: cheap enough to run after every retrain);
    without it each fold chooses ``C`` by its own cross-validation. A class missing from a fold's
    training part gets probability 0 in that fold. With fewer than two labels per fold possible
    (tiny label sets) every row gets the class prior instead.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"need X (n, d) and y (n,); got {X.shape} and {y.shape}")
    classes = np.unique(y) if classes is None else np.asarray(classes)
    index = {int(c): j for j, c in enumerate(classes.tolist())}
    y_idx = np.array([index[int(v)] for v in y.tolist()], dtype=np.int64)
    n, k = len(y), len(classes)
    proba = np.zeros((n, k), dtype=np.float64)
    counts = np.bincount(y_idx, minlength=k)
    present = counts[counts > 0]
    n_splits = min(int(n_splits), n)
    if k < 2 or n_splits < 2 or len(present) < 2:
        proba[:] = counts / max(n, 1)
        return proba, classes
    # Stratify when every class can appear in every fold; otherwise a plain shuffled split
    # (StratifiedKFold warns about the rare class but still works; keep the output quiet).
    if present.min() >= n_splits:
        splits = StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(X, y_idx)
    else:
        rng = np.random.default_rng(random_state)
        fold_of = rng.permutation(n) % n_splits
        splits = ((np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f))
                  for f in range(n_splits))
    for train, test in splits:
        if len(np.unique(y_idx[train])) < 2:
            proba[test] = np.bincount(y_idx[train], minlength=k) / len(train)
            continue
        head = LogisticHead(C=C, cv=1 if C is not None else 5, random_state=random_state)
        head.fit(X[train], y[train])
        cols = np.array([index[int(c)] for c in head.classes_.tolist()], dtype=np.int64)
        proba[np.ix_(test, cols)] = head.predict_proba(X[test])
    return proba, classes


def per_class_thresholds(proba: np.ndarray, y_idx: np.ndarray) -> np.ndarray:
    """Mean self-confidence of each class (``inf`` for a class nobody labelled: never reached)."""
    k = proba.shape[1]
    thresholds = np.full(k, np.inf)
    for j in range(k):
        rows = y_idx == j
        if rows.any():
            thresholds[j] = float(proba[rows, j].mean())
    return thresholds


@dataclass
class LabelIssues:
    """Result of :func:`find_label_issues`; all arrays are aligned with the input rows."""

    flagged: np.ndarray  # bool (n,): off-diagonal in the confident joint (strict filter)
    candidates: np.ndarray  # bool (n,): flagged, or the out-of-fold argmax is another class
    ranking: np.ndarray  # int (m,): indices of candidate rows, most likely error first
    self_confidence: np.ndarray  # float (n,): p[i, given]
    margin: np.ndarray  # float (n,): p[i, given] - max other p[i, j]
    suggested: np.ndarray  # int (n,): column index of the confident other class (or argmax)
    thresholds: np.ndarray  # float (k,)
    confident_joint: np.ndarray  # int (k, k): rows = given label, cols = confident class


def find_label_issues(proba: np.ndarray, y_idx: np.ndarray) -> LabelIssues:
    """Flag and rank likely label errors from out-of-fold probabilities.

    ``proba`` is (n, k) out-of-fold probabilities, ``y_idx`` the given labels as column indices.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y_idx = np.asarray(y_idx, dtype=np.int64)
    n, k = proba.shape
    if len(y_idx) != n:
        raise ValueError("proba and y_idx must have the same number of rows")
    rows = np.arange(n)
    self_conf = proba[rows, y_idx] if n else np.zeros(0)
    others = proba.copy()
    if n:
        others[rows, y_idx] = -np.inf
    best_other = others.argmax(axis=1) if k > 1 else np.zeros(n, dtype=np.int64)
    margin = self_conf - (others[rows, best_other] if k > 1 else 0.0)
    thresholds = per_class_thresholds(proba, y_idx)
    above = proba >= thresholds[None, :]
    has_confident = above.any(axis=1)
    confident_class = np.where(above, proba, -np.inf).argmax(axis=1)
    flagged = has_confident & (confident_class != y_idx)
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (y_idx[has_confident], confident_class[has_confident]), 1)
    suggested = np.where(flagged, confident_class, best_other)
    disagrees = proba.argmax(axis=1) != y_idx if n else np.zeros(0, dtype=bool)
    candidates = flagged | disagrees
    rows_c = np.flatnonzero(candidates)
    order = np.lexsort((margin[rows_c], self_conf[rows_c]))
    return LabelIssues(
        flagged=flagged,
        candidates=candidates,
        ranking=rows_c[order],
        self_confidence=self_conf,
        margin=margin,
        suggested=suggested,
        thresholds=thresholds,
        confident_joint=joint,
    )
