"""How good is the model, honestly?

Active learning picks the items the model finds hard, so accuracy measured on the labels it
chose (cross-validated or not) is biased.  The unbiased number is accuracy on *audit* items —
a uniform random share of what annotators label — reported with a 95 % Wilson score interval
(Wilson 1927), which unlike the normal ("Wald") interval stays inside [0, 1] and keeps its
coverage for small samples and accuracies near 0 or 1 (Brown, Cai & DasGupta 2001).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(0.0, 1.0)`` when ``n == 0``."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    # Exact at the ends (p = 0 or 1) and guarded against rounding just outside [0, 1].
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class AccuracyEstimate:
    """Accuracy on ``n`` items with a confidence interval ``[low, high]``."""

    accuracy: float | None
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (e.g. for ``ModelVersion.metrics``)."""
        return asdict(self)


def accuracy_with_ci(y_true: np.ndarray, y_pred: np.ndarray,
                     confidence: float = 0.95) -> AccuracyEstimate:
    """Accuracy of ``y_pred`` against ``y_true`` with a Wilson interval (audit estimate)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: {y_true.shape} vs {y_pred.shape}")
    n = int(y_true.size)
    k = int((y_true == y_pred).sum())
    low, high = wilson_interval(k, n, confidence)
    return AccuracyEstimate(k / n if n else None, low, high, n, confidence)


def cross_val_accuracy(X: np.ndarray, y: np.ndarray, *, C: float | None = None, cv: int = 5,
                       random_state: int | None = 0) -> float | None:
    """Stratified k-fold accuracy of :class:`~worker.ml.head.LogisticHead` on the labels.

    ``None`` when the labels do not allow it (one class, or a class with a single example).
    With ``C=None`` the value is the one the head computes while choosing ``C`` (slightly
    optimistic: the best of a small grid); pass the chosen ``C`` for a plain CV estimate.
    Biased by active learning either way — report it *beside* the audit estimate.
    """
    from sklearn.model_selection import StratifiedKFold

    from worker.ml.head import LogisticHead

    X = np.asarray(X)
    y = np.asarray(y)
    classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        return None
    if C is None:
        return LogisticHead(cv=cv, random_state=random_state).fit(X, y).cv_accuracy_
    folds = StratifiedKFold(min(cv, int(counts.min())), shuffle=True, random_state=random_state)
    correct = 0
    for train, test in folds.split(X, y_idx):
        head = LogisticHead(C=C, cv=1, random_state=random_state).fit(X[train], y[train])
        correct += int((head.predict(X[test]) == y[test]).sum())
    return correct / len(y)
