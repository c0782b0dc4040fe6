"""Multi-task or independent heads?  Decided per project by cross-validation on its own labels.

Whether sharing a hidden layer helps depends on how related the label sets are and on how many
labels there are (Caruana 1997; negative transfer is common when tasks differ), so it cannot be
a constant: :func:`choose_head` runs K-fold cross-validation of both
:class:`~worker.ml.multitask.IndependentHeads` and :class:`~worker.ml.multitask.MultiTaskHead`
on the labeled items and keeps the one with the better mean score over the sets (accuracy for
single-choice sets, mean average precision for multi-label sets, so each set counts equally).
Ties, and label sets too small to cross-validate, go to the independent heads (the simpler
model).  The :class:`HeadChoice` is JSON-ready for the model version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from worker.ml.label_sets import LabelSet, labeled_mask
from worker.ml.multilabel_metrics import mean_average_precision
from worker.ml.multitask import DEFAULT_C, IndependentHeads, MultiTaskHead

INDEPENDENT = "independent"
MULTITASK = "multitask"
#: Each cross-validation test fold must hold at least this many labeled items.
MIN_FOLD_SIZE = 5


@dataclass
class HeadChoice:
    """Which head a project uses, and the cross-validated evidence (stored on the version)."""

    kind: str
    scores: dict[str, float | None] = field(default_factory=dict)
    per_set: dict[str, dict[str, float | None]] = field(default_factory=dict)
    n_folds: int = 0
    n_labeled: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_score(label_set: LabelSet, y: np.ndarray, P: np.ndarray | None,
              classes: np.ndarray | None) -> float | None:
    """Accuracy (single-choice) or mAP (multi-label) of probabilities ``P`` on labeled rows."""
    rows = labeled_mask(label_set, y)
    if not rows.any():
        return None
    if label_set.is_multi:
        return None if P is None else mean_average_precision(y[rows], P[rows])
    if P is None or classes is None:
        return 0.0
    return float((classes[P[rows].argmax(axis=1)] == y[rows]).mean())


def score_model(model: Any, label_sets: Sequence[LabelSet], X: np.ndarray,
                labels: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """Per-set score of a fitted multi-set model on ``X`` (see :func:`set_score`)."""
    P = model.predict_proba(X)
    out = {}
    for s in label_sets:
        m = model.set_model(s.name)
        out[s.name] = set_score(s, np.asarray(labels[s.name]), P.get(s.name),
                                None if m is None else m.classes_)
    return out


def choose_head(label_sets: Sequence[LabelSet], X: np.ndarray, labels: Mapping[str, np.ndarray],
                *, cv: int = 3, random_state: int = 0, C: float | None = None,
                multitask_params: Mapping[str, Any] | None = None) -> HeadChoice:
    """Cross-validate both head types on the labeled items; see the module docstring.

    ``C``: the multi-task head's regularisation (default: the median the independent heads
    choose on each training fold).  ``multitask_params``: other MultiTaskHead parameters.
    """
    X = np.asarray(X)
    any_label = np.zeros(len(X), dtype=bool)
    for s in label_sets:
        any_label |= labeled_mask(s, np.asarray(labels[s.name]))
    rows = np.flatnonzero(any_label)
    n_folds = min(cv, len(rows) // MIN_FOLD_SIZE)
    if n_folds < 2:
        return HeadChoice(INDEPENDENT, n_labeled=len(rows),
                          reason=f"too few labels to cross-validate ({len(rows)})")
    fold_scores: dict[str, dict[str, list[tuple[float, int]]]] = {
        k: {s.name: [] for s in label_sets} for k in (INDEPENDENT, MULTITASK)}
    folds = KFold(n_folds, shuffle=True, random_state=random_state)
    for train, test in folds.split(rows):
        tr, te = rows[train], rows[test]
        lab_tr = {k: np.asarray(v)[tr] for k, v in labels.items()}
        lab_te = {k: np.asarray(v)[te] for k, v in labels.items()}
        ind = IndependentHeads(label_sets, random_state=random_state).fit(X[tr], lab_tr)
        mt = MultiTaskHead(label_sets, C=C or ind.median_C() or DEFAULT_C,
                           random_state=random_state, **(multitask_params or {})
                           ).fit(X[tr], lab_tr)
        for kind, model in ((INDEPENDENT, ind), (MULTITASK, mt)):
            for name, score in score_model(model, label_sets, X[te], lab_te).items():
                if score is not None:
                    n = int(labeled_mask(next(s for s in label_sets if s.name == name),
                                         lab_te[name]).sum())
                    fold_scores[kind][name].append((score, n))
    per_set: dict[str, dict[str, float | None]] = {}
    for s in label_sets:
        per_set[s.name] = {}
        for kind in (INDEPENDENT, MULTITASK):
            got = fold_scores[kind][s.name]
            weight = sum(n for _, n in got)
            per_set[s.name][kind] = (round(sum(v * n for v, n in got) / weight, 4)
                                     if weight else None)
    scores: dict[str, float | None] = {}
    for kind in (INDEPENDENT, MULTITASK):
        vals = [v[kind] for v in per_set.values() if v[kind] is not None]
        scores[kind] = round(float(np.mean(vals)), 4) if vals else None
    ind_s, mt_s = scores[INDEPENDENT], scores[MULTITASK]
    kind = MULTITASK if ind_s is not None and mt_s is not None and mt_s > ind_s else INDEPENDENT
    return HeadChoice(kind, scores, per_set, n_folds, len(rows),
                      reason=f"{n_folds}-fold cross-validation, mean score over sets")


def fit_heads(label_sets: Sequence[LabelSet], X: np.ndarray, labels: Mapping[str, np.ndarray],
              *, choice: HeadChoice | None = None, cv: int = 3, random_state: int = 0,
              multitask_params: Mapping[str, Any] | None = None
              ) -> tuple[IndependentHeads | MultiTaskHead, HeadChoice]:
    """The product's retrain: choose (unless ``choice`` is given) and fit on all labels.

    Returns ``(model, choice)``; store ``choice.as_dict()`` on the model version.
    """
    choice = choice or choose_head(label_sets, X, labels, cv=cv, random_state=random_state,
                                   multitask_params=multitask_params)
    ind = IndependentHeads(label_sets, random_state=random_state).fit(X, labels)
    if choice.kind == INDEPENDENT:
        return ind, choice
    mt = MultiTaskHead(label_sets, C=ind.median_C() or DEFAULT_C, random_state=random_state,
                       **(multitask_params or {})).fit(X, labels)
    return mt, choice
