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

The recommendation switches only for a gain clearly above cross-validation noise. Every backbone
gets out-of-fold predictions for every labeled item on the same folds, so two backbones are
compared item by item, as two classifiers are on one test set (Dietterich 1998): the per-item
difference in out-of-fold *log loss* (a proper score, far less discrete than 0/1 accuracy, hence
more powerful on a hundred labels), averaged over the repeats, must be above zero by a one-sided
95 % z-test, *and* the accuracy gain must be at least :data:`MIN_GAIN` (a switch re-embeds the
whole project; a smaller gain is not worth that). The corrected resampled t-test on per-fold
accuracies (Nadeau & Bengio 2003) was tried first: at 100 labels it never detected the 2.5-point
full-pool gain of Lite1 over Lite0 on clothing-small (0 of 6 draws), the log-loss test in 3.
The "transfer does not fit" warning fires when the best backbone's accuracy is not clearly above
the majority-class rate: its 95 % Wilson interval reaches down to that rate.
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
    With fewer items than dimensions F can fit y exactly; as in the reference code, 1e-5 added
    to |m|^2 and to the residual keeps alpha and beta finite there. The reference adds a fixed
    1e-5 to |m|^2, whose units are 1/feature^2, which breaks LogME's invariance to the
    features' global scale (x100 changed a score from -0.071 to -0.164 in our test); here that
    term is 1e-5 divided by the mean squared row norm: the same number on L2-normalised rows
    (what the check passes), and the evidence stays scale-invariant. The iteration runs to a
    tight tolerance instead of the reference's 1 % (at most 11 steps).
    """
    eps_res = 1e-5  # in target units
    eps_m = 1e-5 / max(float(s2.sum()) / n, 1e-300)  # in 1/feature^2 units
    z = U.T @ y  # y in the left singular basis
    y_out = max(float(y @ y - z @ z), 0.0)  # part of y outside F's column space

    def moments(lam: float) -> tuple[float, float, float]:
        shrink = s2 / (s2 + lam)
        m2 = float((s2 / (s2 + lam) ** 2 * z**2).sum())  # |m|^2
        res2 = float(((1 - shrink) ** 2 * z**2).sum()) + y_out  # |F m - y|^2
        return float(shrink.sum()), m2, res2

    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        lam = alpha / beta
        gamma, m2, res2 = moments(lam)
        alpha = gamma / (m2 + eps_m)
        beta = max(n - gamma, 1e-12) / (res2 + eps_res)
        if abs(alpha / beta - lam) / lam < tol:
            break
    _, m2, res2 = moments(alpha / beta)
    # log|A| with A = alpha I + beta F^T F: the d - r null directions contribute log(alpha).
    logdet = float(np.log(alpha + beta * s2).sum()) + (d - len(s2)) * math.log(alpha)
    evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - logdet / 2
                - beta / 2 * (res2 + eps_res) - alpha / 2 * (m2 + eps_m)
                - n / 2 * math.log(2 * math.pi))
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


def _oof_scores(X: np.ndarray, y: np.ndarray, splits, repeats: int, seed: int) -> dict:
    """Per-item out-of-fold correctness and log loss of the product's head, averaged over the
    repeats; ``C`` is chosen once, by the head's own cross-validation on all the labels."""
    C = LogisticHead(random_state=seed).fit(X, y).C_
    correct = np.zeros(len(y))
    loss = np.zeros(len(y))
    for train, test in splits:
        head = LogisticHead(C=C, cv=1).fit(X[train], y[train])  # cv=1: fixed C, no inner CV
        proba = head.predict_proba(X[test])
        p_true = proba[np.arange(len(test)), np.searchsorted(head.classes_, y[test])]
        correct[test] += head.classes_[proba.argmax(axis=1)] == y[test]
        loss[test] += -np.log(np.clip(p_true, 1e-12, None))
    return {"C": float(C), "correct": correct / repeats, "loss": loss / repeats}


def paired_gain(score_b: np.ndarray, score_a: np.ndarray) -> tuple[float, float]:
    """(mean of b - a over the same items, its standard error); inf when it cannot be told."""
    diff = np.asarray(score_b, dtype=np.float64) - np.asarray(score_a, dtype=np.float64)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, float("inf")
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


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
        scores[name] = _oof_scores(Xk, yk, splits, repeats, seed)
        scores[name]["logme"] = logme(_l2_normalise(Xk), yk)
    n = len(yk)
    majority = float(np.bincount(np.unique(yk, return_inverse=True)[1]).max() / n)
    base = scores[current]
    table = []
    for name, sc in scores.items():
        acc = float(sc["correct"].mean())
        low, high = wilson_interval(round(acc * n), n)
        gain, se = paired_gain(sc["correct"], base["correct"])
        loss_gain, loss_se = paired_gain(base["loss"], sc["loss"])  # > 0: b has lower loss
        loss_z = loss_gain / loss_se if 0 < loss_se < math.inf else 0.0
        table.append({
            "backbone": name, "cv_accuracy": round(acc, 4), "ci": [round(low, 4), round(high, 4)],
            "log_loss": round(float(sc["loss"].mean()), 4), "logme": round(sc["logme"], 4),
            "C": sc["C"], "gain": round(gain, 4), "gain_se": round(se, 4) if se < 1e9 else None,
            "log_loss_gain": round(loss_gain, 4), "log_loss_z": round(loss_z, 2),
            "clear_gain": name != current and gain >= MIN_GAIN and loss_z > Z_ONE_SIDED_95,
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
