"""Scores of multi-label predictions: per-tag precision / recall / F1, average precision, mAP.

Used by :class:`~worker.ml.multilabel.MultiLabelHead` (thresholds), the multi-task simulation
and the web side's per-set dashboard.  Rows whose labels are ``-1`` (not labeled in this set;
see :mod:`worker.ml.label_sets`) are ignored.  Average precision is the area under the
precision-recall curve of one tag's scores (scikit-learn's step-wise definition, no
interpolation); mean average precision (mAP) averages it over the tags that have at least one
positive, as in PASCAL VOC / COCO-style multi-label evaluation.  A tag's F1 is reported at the
head's own threshold.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score


def _r(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(float(x)) else None


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_f1_threshold(y: np.ndarray, p: np.ndarray, default: float = 0.5) -> float:
    """The probability threshold maximising F1 of one tag on (out-of-fold) scores ``p``.

    The threshold is halfway between the chosen score and the next lower one, so it does not
    sit exactly on a training score.  ``default`` when ``y`` has no positive (F1 undefined).
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    if not y.any():
        return default
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    f1 = 2 * tp / (k + y.sum())  # F1 when predicting the top-k positive
    last = np.r_[ps[1:] != ps[:-1], True]  # only cut between distinct scores
    f1 = np.where(last, f1, -1.0)
    best = int(np.argmax(f1))
    below = ps[best + 1] if best + 1 < len(ps) else 0.0
    return float((ps[best] + below) / 2.0)


def multilabel_report(Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray | float = 0.5
                      ) -> dict:
    """Per-tag and overall scores of tag probabilities ``P`` (n, k) against 0/1 ``Y`` (n, k).

    Keys: ``precision``, ``recall``, ``f1``, ``support`` (positives), ``average_precision``
    (per tag; ``None`` without a positive), ``mAP``, ``micro_f1``, ``macro_f1``, ``n`` (rows
    scored).  JSON-ready.
    """
    Y = np.asarray(Y)
    P = np.asarray(P, dtype=np.float64)
    if Y.shape != P.shape or Y.ndim != 2:
        raise ValueError(f"need Y and P of the same (n, k) shape, got {Y.shape} and {P.shape}")
    rows = (Y >= 0).all(axis=1)
    Y, P = Y[rows].astype(bool), P[rows]
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (Y.shape[1],))
    pred = P >= t
    prec, rec, f1, ap = [], [], [], []
    for j in range(Y.shape[1]):
        tp = float((pred[:, j] & Y[:, j]).sum())
        pj, rj, fj = _prf(tp, float((pred[:, j] & ~Y[:, j]).sum()),
                          float((~pred[:, j] & Y[:, j]).sum()))
        prec.append(_r(pj))
        rec.append(_r(rj))
        f1.append(_r(fj))
        ap.append(_r(average_precision_score(Y[:, j], P[:, j])) if Y[:, j].any() else None)
    _, _, micro = _prf(float((pred & Y).sum()), float((pred & ~Y).sum()), float((~pred & Y).sum()))
    support = Y.sum(axis=0)
    present = [a for a in ap if a is not None]
    scored = [f for f, s in zip(f1, support, strict=True) if s > 0]
    return {
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "support": support.astype(int).tolist(),
        "average_precision": ap,
        "mAP": _r(np.mean(present)) if present else None,
        "micro_f1": _r(micro),
        "macro_f1": _r(np.mean(scored)) if scored else None,
        "n": int(rows.sum()),
    }


def mean_average_precision(Y: np.ndarray, P: np.ndarray) -> float | None:
    """mAP over the tags with a positive among the labeled rows; ``None`` if there is none."""
    return multilabel_report(Y, P)["mAP"]
