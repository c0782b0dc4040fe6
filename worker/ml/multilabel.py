"""The head of a multi-label set: one calibrated binary logistic model per tag.

Binary relevance (one independent yes/no model per tag; Tsoumakas & Katakis 2007) is the
standard, strong baseline for multi-label classification and trains as fast as the softmax head.
Each tag's model is a :class:`~worker.ml.head.LogisticHead` without class weighting, whose ``C``
is chosen by cross-validated *log loss*: a proper scoring rule, so the probabilities are as
calibrated as the labels allow (Niculescu-Mizil & Caruana 2005; Guo et al. 2017 on why
calibration matters when probabilities drive decisions).  The yes/no decision uses a per-tag
threshold that maximises F1 on the *out-of-fold* probabilities of the same cross-validation —
chosen on the training labels alone, never on held-out data.  A tag without a positive (or
without a negative) among the labels gets a constant, Laplace-smoothed probability.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from worker.ml.head import LogisticHead
from worker.ml.multilabel_metrics import best_f1_threshold

#: The decision threshold of a tag whose labels allow no cross-validation.
DEFAULT_THRESHOLD = 0.5


class MultiLabelHead(ClassifierMixin, BaseEstimator):
    """Binary relevance with calibrated per-tag logistic models and F1-optimal thresholds.

    ``fit(X, Y)`` with ``Y`` (n, k) 0/1 (rows of -1 are ignored: unlabeled in this set);
    ``predict_proba(X)`` (n, k) per-tag probabilities; ``predict(X)`` (n, k) 0/1.

    Learned: ``n_tags_``, ``tag_models_`` (a fitted LogisticHead, or ``None`` for a constant
    tag), ``prior_`` (smoothed positive rate per tag), ``thresholds_``, ``tag_counts_``
    (positives per tag), ``classes_`` (tag indices, so strategies see a fitted model).
    """

    def __init__(self, cv: int = 5, random_state: int | None = 0) -> None:
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MultiLabelHead:
        X = np.asarray(X)
        Y = np.asarray(Y)
        if Y.ndim != 2 or len(X) != len(Y):
            raise ValueError(f"need X (n, d) and Y (n, k); got {X.shape} and {Y.shape}")
        rows = (Y >= 0).all(axis=1)
        X, Y = X[rows], Y[rows].astype(np.int64)
        if len(Y) == 0:
            raise ValueError("no labeled rows to fit a multi-label head on")
        k = Y.shape[1]
        self.n_tags_ = k
        self.n_features_in_ = X.shape[1]
        self.classes_ = np.arange(k)
        self.tag_counts_ = Y.sum(axis=0)
        self.prior_ = (self.tag_counts_ + 1.0) / (len(Y) + 2.0)
        self.tag_models_: list[LogisticHead | None] = []
        self.thresholds_ = np.full(k, DEFAULT_THRESHOLD)
        for j in range(k):
            pos = int(self.tag_counts_[j])
            if pos == 0 or pos == len(Y):
                self.tag_models_.append(None)
                continue
            head = LogisticHead(class_weight=None, cv=self.cv, random_state=self.random_state)
            head.fit(X, Y[:, j])
            if head.cv_proba_ is not None:
                self.thresholds_[j] = best_f1_threshold(Y[:, j], head.cv_proba_[:, 1])
            head.cv_proba_ = None  # not needed after the threshold; keeps the model small
            self.tag_models_.append(head)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of each tag (n, k); rows need not sum to 1."""
        check_is_fitted(self, "tag_models_")
        out = np.empty((len(X), self.n_tags_), dtype=np.float64)
        for j, model in enumerate(self.tag_models_):
            out[:, j] = self.prior_[j] if model is None else model.predict_proba(X)[:, 1]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """0/1 per tag at the per-tag thresholds."""
        return (self.predict_proba(X) >= self.thresholds_).astype(np.int8)
