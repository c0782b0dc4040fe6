"""Which backbone transfers to this project's labels? Estimated from the labels themselves.

Transfer with a frozen backbone only works when the backbone's features separate the user's
classes, and only an experiment on the user's own labels says how well they do.  Two estimates
per backbone, on the same labeled items:

* the cross-validated accuracy and log loss of the product's own head
  (:class:`~worker.ml.head.LogisticHead`), over the *same* repeated stratified folds for every
  backbone, so backbones are compared pairwise (what the user would get after a switch);
* LogME (You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning"): the maximum log evidence of a Bayesian linear model from features to each class's
  one-vs-rest target, averaged over classes.  Training-free and fast; shown next to the accuracy.

The recommendation switches only for a gain clearly above cross-validation noise: the corrected
repeated k-fold t-test (Nadeau & Bengio 2003, "Inference for the generalization error";
Bouckaert & Frank 2004) on the per-fold accuracy differences, one-sided at 95 %, *and* at least
:data:`MIN_GAIN` (a switch re-embeds the whole project; a smaller gain is not worth that).  The
"transfer does not fit" warning fires when the best backbone's accuracy is not clearly above the
majority-class rate: its 95 % Wilson interval reaches down to that rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from sklearn.model_selection import StratifiedKFold

from worker.ml.head import LogisticHead, _l2_normalise
from worker.ml.metrics import wilson_interval

__all__ = ["MIN_GAIN", "MIN_PER_CLASS", "assess_backbones", "logme", "paired_gain"]

#: Labels per class a class needs to take part (one per fold of 5-fold CV): the issue's ">= 5".
MIN_PER_CLASS = 5
#: Smallest accuracy gain (1 point) worth a switch, which re-embeds every item of the project.
MIN_GAIN = 0.01
#: One-sided 95 % normal quantile for the paired test.
Z_ONE_SIDED_95 = 1.6449
#: Items used at most (a stratified subsample beyond): the estimate is stable long before, and
#: the check must stay a background job of seconds to a minute per backbone.
MAX_ITEMS = 2000


# -- LogME -----------------------------------------------------------------------------------
def _max_evidence(y: np.ndarray, U: np.ndarray, s2: np.ndarray, n: int, d: int,
                  max_iter: int = 100, tol: float = 1e-6) -> float:
    """Per-sample maximum log evidence of ``y ~ N(F w, 1/beta)``, ``w ~ N(0, 1/alpha)``.

    ``F = U diag(sqrt(s2)) V^T`` (thin SVD).  The fixed-point updates of alpha and beta are
    those of LogME's Algorithm 1 (MacKay's evidence framework), written in the SVD basis:
    gamma = sum s2/(s2 + alpha/beta), alpha = gamma/|m|^2, beta = (n - gamma)/|F m - y|^2.
    LogME's reference code stops at 1 % change of alpha/beta and adds 1e-5 to |m|^2 and to the
    residual; here the iteration runs to a tight tolerance and the guard is only against an exact
    zero. Then the maximum evidence is exactly invariant to the features' global scale (alpha
    absorbs it), which the reference's fixed 1e-5 breaks for large-norm features (there,
    scaling features x100 changed the score from -0.071 to -0.164; see the tests).
    """
    eps = 1e-300  # only keeps alpha, beta finite on a perfect fit
    z = U.T @ y  # y in the left singular basis
    y_out = float(y @ y - z @ z)  # part of y outside F's column space
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        lam = alpha / beta
        gamma = float((s2 / (s2 + lam)).sum())
        shrink = s2 / (s2 + lam)
        m2 = float(((np.sqrt(s2) / (s2 + lam)) ** 2 * z**2).sum())  # |m|^2
        res2 = float(((1 - shrink) ** 2 * z**2).sum()) + y_out  # |F m - y|^2
        alpha = gamma / (m2 + eps)
        beta = (n - gamma) / (res2 + eps)
        if abs(alpha / beta - lam) / lam < tol:
            break
    lam = alpha / beta
    m2 = float(((np.sqrt(s2) / (s2 + lam)) ** 2 * z**2).sum())
    res2 = float(((1 - s2 / (s2 + lam)) ** 2 * z**2).sum()) + y_out
    # log|A| with A = alpha I + beta F^T F: the d - r null directions contribute log(alpha).
    logdet = float(np.log(alpha + beta * s2).sum()) + (d - len(s2)) * math.log(alpha)
    evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - logdet / 2
                - beta / 2 * (res2 + eps) - alpha / 2 * (m2 + eps) - n / 2 * math.log(2 * math.pi))
    return evidence / n


def logme(X: np.ndarray, y: np.ndarray) -> float:
    """LogME of features ``X`` (n, d) for class labels ``y``: mean over classes of the maximum
    per-sample log evidence of the one-vs-rest target (higher = features fit the labels better).
    """
    F = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    n, d = F.shape
    U, s, _ = np.linalg.svd(F, full_matrices=False)
    s2 = s**2
    keep = s2 > s2.max(initial=0.0) * 1e-12  # numerically zero directions belong to the null space
    U, s2 = U[:, keep], s2[keep]
    return float(np.mean([_max_evidence((y == c).astype(np.float64), U, s2, n, d)
                          for c in np.unique(y)]))


# -- cross-validated head --------------------------------------------------------------------
def _splits(y: np.ndarray, folds: int, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for r in range(repeats):
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed + r)
        out.extend(cv.split(np.zeros(len(y)), y))
    return out


def _fold_scores(X: np.ndarray, y: np.ndarray, splits, seed: int) -> dict:
    """Per-fold accuracy and log loss of the product's head, ``C`` chosen once by its own CV."""
    C = LogisticHead(random_state=seed).fit(X, y).C_
    acc, loss = [], []
    for train, test in splits:
        head = LogisticHead(C=C, cv=1).fit(X[train], y[train])  # cv=1: fixed C, no inner CV
        proba = head.predict_proba(X[test])
        cols = np.searchsorted(head.classes_, y[test])
        p_true = proba[np.arange(len(test)), cols]
        acc.append(float((head.classes_[proba.argmax(axis=1)] == y[test]).mean()))
        loss.append(float(-np.log(np.clip(p_true, 1e-12, None)).mean()))
    return {"C": float(C), "acc": np.asarray(acc), "loss": np.asarray(loss)}


def paired_gain(acc_b: np.ndarray, acc_a: np.ndarray, folds: int) -> tuple[float, float]:
    """(mean accuracy gain of b over a, its corrected standard error) over the same folds.

    Folds share training items, so their differences are correlated; the corrected resampled
    t-test (Nadeau & Bengio 2003) inflates the variance by ``n_test / n_train = 1/(folds - 1)``.
    """
    diff = np.asarray(acc_b) - np.asarray(acc_a)
    if len(diff) < 2:
        return float(diff.mean()), float("inf")
    var = float(diff.var(ddof=1))
    return float(diff.mean()), math.sqrt((1 / len(diff) + 1 / (folds - 1)) * var)


def _usable(y: np.ndarray, max_items: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Rows to use: classes with >= MIN_PER_CLASS labels, a stratified subsample beyond
    ``max_items``. Returns (row indices, classes left out)."""
    classes, counts = np.unique(y, return_counts=True)
    dropped = [int(c) for c, k in zip(classes, counts, strict=True) if k < MIN_PER_CLASS]
    rows = np.flatnonzero(~np.isin(y, dropped))
    if len(rows) > max_items:
        rng = np.random.default_rng(seed)
        share = max_items / len(rows)
        picked = []
        for c in np.unique(y[rows]):
            members = rows[y[rows] == c]
            k = max(MIN_PER_CLASS, round(share * len(members)))
            picked.append(rng.choice(members, min(k, len(members)), replace=False))
        rows = np.sort(np.concatenate(picked))
    return rows, dropped


def assess_backbones(features: Mapping[str, np.ndarray], y: np.ndarray, current: str, *,
                     folds: int = 5, repeats: int = 3, seed: int = 0,
                     max_items: int = MAX_ITEMS) -> dict:
    """Score every backbone's embeddings of the same labeled items; JSON-ready result.

    ``features[name]`` is (n, d) for each backbone (rows aligned with ``y``); ``current`` is the
    project's backbone (the baseline of every gain).  Raises ValueError when fewer than two
    classes have ``MIN_PER_CLASS`` labels.
    """
    y = np.asarray(y)
    if current not in features:
        raise ValueError(f"the current backbone {current!r} must be among the features")
    rows, dropped = _usable(y, max_items, seed)
    yk = y[rows]
    if len(np.unique(yk)) < 2:
        raise ValueError(f"the check needs at least 2 classes with {MIN_PER_CLASS} or more "
                         "labels each: label more items first")
    splits = _splits(yk, folds, repeats, seed)
    scores = {}
    for name, X in features.items():
        Xk = np.asarray(X, dtype=np.float32)[rows]
        if Xk.shape[0] != len(yk) or not np.isfinite(Xk).all():
            raise ValueError(f"features of {name!r} are not finite (n, d) rows aligned with y")
        scores[name] = _fold_scores(Xk, yk, splits, seed)
        scores[name]["logme"] = logme(_l2_normalise(Xk), yk)
    n = len(yk)
    majority = float(np.bincount(np.unique(yk, return_inverse=True)[1]).max() / n)
    base = scores[current]["acc"]
    table = []
    for name, sc in scores.items():
        acc = float(sc["acc"].mean())
        low, high = wilson_interval(round(acc * n), n)
        gain, se = paired_gain(sc["acc"], base, folds)
        table.append({
            "backbone": name, "cv_accuracy": round(acc, 4), "ci": [round(low, 4), round(high, 4)],
            "log_loss": round(float(sc["loss"].mean()), 4), "logme": round(sc["logme"], 4),
            "C": sc["C"], "gain": round(gain, 4), "gain_se": round(se, 4) if se < 1e9 else None,
            "clear_gain": name != current and gain >= MIN_GAIN and gain - Z_ONE_SIDED_95 * se > 0,
        })
    table.sort(key=lambda r: (-r["cv_accuracy"], r["log_loss"]))
    best = table[0]
    winners = [r for r in table if r["clear_gain"]]
    return {
        "current": current,
        "recommended": winners[0]["backbone"] if winners else None,
        "best": best["backbone"],
        "transfer_fits": bool(best["ci"][0] > majority),
        "majority_rate": round(majority, 4),
        "n_labels": int(n),
        "n_classes": int(len(np.unique(yk))),
        "dropped_classes": dropped,
        "folds": folds,
        "repeats": repeats,
        "min_gain": MIN_GAIN,
        "rows": table,
    }
