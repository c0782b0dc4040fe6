"""Evaluation of a project's head beyond one accuracy number, computed after each retrain.

:func:`evaluate_labels` is the one entry point the retrain task calls. From a single round of
K-fold cross-validation (out-of-fold probabilities of :class:`~worker.ml.head.LogisticHead` at
the C the retrain chose) it derives:

* the confusion matrix and per-class precision, recall and F1 over all labels — note that active
  learning picks hard items, so these are pessimistic for the pool (labelled as such in the UI);
* the same on the audit items only (a uniform random sample of the pool, so an unbiased view),
  when there are audit labels;
* likely label errors (:mod:`worker.ml.label_errors`, confident learning) with item ids;
* the *predicted random-sampling curve*: what accuracy labelling uniformly at random would have
  reached at each budget. See :func:`random_sampling_curve` for the method.

No Django here; everything returned is JSON-ready (plain lists, dicts, floats, ints).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from worker.ml.head import LogisticHead
from worker.ml.label_errors import find_label_issues, out_of_fold_proba

__all__ = [
    "DEFAULT_BUDGETS",
    "confusion_report",
    "evaluate_labels",
    "fit_power_law",
    "power_law",
    "random_sampling_curve",
]

#: Budgets of the predicted random curve, as in ``simulate``; capped by the audit labels.
DEFAULT_BUDGETS: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640, 1280)
#: Fewest audit labels for a random curve: 10 to train on at the first budget, 10 to test on.
MIN_AUDIT_FOR_CURVE = 30
#: At most this many label issues go into a ModelVersion's metrics (the page shows them).
MAX_ISSUES = 200


def _r(x: float, nd: int = 4) -> float | None:
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def confusion_report(y_idx: np.ndarray, pred_idx: np.ndarray, k: int) -> dict:
    """Confusion matrix (rows = given label, columns = prediction) and per-class P/R/F1."""
    y_idx = np.asarray(y_idx, dtype=np.int64)
    pred_idx = np.asarray(pred_idx, dtype=np.int64)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y_idx, pred_idx), 1)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    labelled = support > 0
    n = int(len(y_idx))
    return {
        "matrix": matrix.tolist(),
        "precision": [_r(v) for v in precision],
        "recall": [_r(v) for v in recall],
        "f1": [_r(v) for v in f1],
        "support": support.tolist(),
        "accuracy": _r(tp.sum() / n) if n else None,
        "macro_f1": _r(f1[labelled].mean()) if labelled.any() else None,
        "n": n,
    }


def power_law(n: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray | float:
    """The inverse power law of learning curves: accuracy(n) = a - b * n^(-c)."""
    return a - b * np.power(np.asarray(n, dtype=np.float64), -c)


def fit_power_law(
    ns: Sequence[float], accs: Sequence[float], stds: Sequence[float] | None = None
) -> dict | None:
    """Fit :func:`power_law` to measured points (weighted by their spread); None if it can't.

    Learning curves of a fixed learner are well described by an inverse power law (Frey & Fisher
    1999; Figueroa et al. 2012, "Predicting sample size required for classification
    performance"), which is what lets the curve be extended past the measured budgets.
    """
    ns = np.asarray(ns, dtype=np.float64)
    accs = np.asarray(accs, dtype=np.float64)
    if len(ns) < 3 or len(np.unique(ns)) < 3:
        return None
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    sigma = None
    if stds is not None:
        sigma = np.maximum(np.asarray(stds, dtype=np.float64), 0.01)
    try:
        with warnings.catch_warnings():
            # Few points: the covariance may be undefined; only the parameters are used.
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(
                power_law, ns, accs, p0=(min(accs.max() + 0.05, 1.0), 1.0, 0.5), sigma=sigma,
                bounds=([0.0, 0.0, 0.05], [1.0, 10.0, 2.0]), maxfev=5000,
            )
    except (RuntimeError, ValueError):
        return None
    a, b, c = (float(p) for p in params)
    return {"a": _r(a, 5), "b": _r(b, 5), "c": _r(c, 5)}


def random_sampling_curve(
    X: np.ndarray,
    y: np.ndarray,
    *,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    repeats: int = 5,
    random_state: int = 0,
    C: float | None = None,
) -> dict | None:
    """Predicted accuracy of labelling uniformly at random, from the audit labels alone.

    Method: audit items are drawn uniformly at random from the pool (issue 4), so a random subset
    of them *is* a random-sampling label set of that size, and the other audit items are a random
    held-out test set. For each repeat, the audit items are shuffled; a third (at least 10) is
    held out, and the product's :class:`LogisticHead` is fitted on the first ``b`` of the rest for
    every budget ``b`` (with ``C`` given, at that regularisation — the retrain passes the one it
    chose, which keeps this to one fit per point; without, each fit chooses C by CV). This is
    exactly what ``simulate --strategy random`` measures — random picks, the same head, held-out
    accuracy — with the user's own audit labels as oracle and test set. Mean and standard
    deviation over repeats are returned, plus an inverse-power-law fit that extends the curve
    beyond the largest measurable budget (drawn dashed in the dashboard: it is an extrapolation).
    Returns None when there are fewer than :data:`MIN_AUDIT_FOR_CURVE` audit labels.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    n = len(y)
    if n < MIN_AUDIT_FOR_CURVE or len(np.unique(y)) < 2:
        return None
    n_test = max(10, n // 3)
    cap = n - n_test
    steps = sorted({b for b in budgets if b <= cap} | {cap})
    steps = [b for b in steps if b >= 2]
    rng = np.random.default_rng(random_state)
    accs = np.zeros((repeats, len(steps)))
    for r in range(repeats):
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test:]
        for j, b in enumerate(steps):
            pick = train[:b]
            if len(np.unique(y[pick])) < 2:
                # One class only: the head predicts it everywhere.
                accs[r, j] = float((y[test] == y[pick][0]).mean())
                continue
            head = LogisticHead(C=C, cv=1 if C is not None else 5, random_state=r)
            head.fit(X[pick], y[pick])
            accs[r, j] = float((head.predict(X[test]) == y[test]).mean())
    mean = accs.mean(axis=0)
    std = accs.std(axis=0)
    return {
        "method": "audit-subsample",
        "n_audit": int(n),
        "n_test": int(n_test),
        "repeats": int(repeats),
        "points": [
            {"n": int(b), "mean": _r(m), "std": _r(s)}
            for b, m, s in zip(steps, mean, std, strict=True)
        ],
        "fit": fit_power_law(steps, mean, std),
    }


def evaluate_labels(
    X: np.ndarray,
    y: np.ndarray,
    *,
    item_ids: Sequence[int] | np.ndarray,
    audit: np.ndarray | None = None,
    C: float | None = None,
    n_splits: int = 5,
    random_state: int = 0,
    max_issues: int = MAX_ISSUES,
    random_curve: bool = True,
    proba: np.ndarray | None = None,
    with_oof: bool = False,
) -> dict:
    """Everything the dashboard and the label-error page show about one model version.

    ``X`` (n, d) embeddings of the labelled items, ``y`` (n,) their label ids, ``item_ids`` (n,)
    their item ids, ``audit`` (n,) bool marks audit labels, ``C`` the head's regularisation.
    ``proba`` (n, k): out-of-fold probabilities already computed (the retrain passes the head's
    own, :attr:`LogisticHead.cv_proba_`, columns in ``np.unique(y)`` order), so that a version's
    cross-validated accuracy, confusion matrix and label errors all come from one
    cross-validation; without it they are computed here.
    Returns a dict to merge into ``ModelVersion.metrics``; keys: ``eval_classes``, ``cv_report``,
    ``audit_report``, ``label_issues`` (top :data:`MAX_ISSUES`, ranked), ``label_issues_n``
    (all candidates), ``label_issues_confident`` (strict confident-learning filter),
    ``label_thresholds``, ``random_curve``, ``eval_seconds``; with ``with_oof`` also ``oof``, the
    one entry that is not JSON: numpy arrays of the per-row given label, out-of-fold
    prediction, its probability and the label-error candidate flag (the retrain stores them as a file).
    """
    from threadpoolctl import threadpool_limits

    # One BLAS thread: these are many small fits, for which OpenBLAS threads only add overhead;
    # measured on this 2-core machine while it was busy, a 300-label head fit took 14 s with
    # OpenBLAS threads and 0.7 s with one.
    with threadpool_limits(limits=1, user_api="blas"):
        return _evaluate_labels(
            X, y, item_ids=item_ids, audit=audit, C=C, n_splits=n_splits,
            random_state=random_state, max_issues=max_issues, random_curve=random_curve,
            proba=proba, with_oof=with_oof,
        )


def _evaluate_labels(X, y, *, item_ids, audit, C, n_splits, random_state, max_issues,
                     random_curve, proba, with_oof) -> dict:
    started = time.monotonic()
    X = np.asarray(X)
    y = np.asarray(y)
    ids = np.asarray(item_ids, dtype=np.int64)
    if proba is None:
        proba, classes = out_of_fold_proba(
            X, y, C=C, n_splits=n_splits, random_state=random_state
        )
    else:
        classes = np.unique(y)
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape != (len(y), len(classes)):
            raise ValueError(f"proba must be {(len(y), len(classes))}, got {proba.shape}")
    index = {int(c): j for j, c in enumerate(classes.tolist())}
    y_idx = np.array([index[int(v)] for v in y.tolist()], dtype=np.int64)
    k = len(classes)
    pred = proba.argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    out: dict = {
        "eval_classes": [int(c) for c in classes.tolist()],
        "cv_report": confusion_report(y_idx, pred, k),
        "audit_report": None,
        "random_curve": None,
    }
    if audit is not None:
        audit = np.asarray(audit, dtype=bool)
        if audit.any():
            out["audit_report"] = confusion_report(y_idx[audit], pred[audit], k)
    issues = find_label_issues(proba, y_idx)
    top = issues.ranking[:max_issues]
    out["label_issues"] = [
        {
            "item": int(ids[i]),
            "given": int(classes[y_idx[i]]),
            "suggested": int(classes[issues.suggested[i]]),
            "self_confidence": _r(issues.self_confidence[i]),
            "suggested_confidence": _r(proba[i, issues.suggested[i]]),
            "margin": _r(issues.margin[i]),
            "confident": bool(issues.flagged[i]),
        }
        for i in top.tolist()
    ]
    out["label_issues_n"] = int(issues.candidates.sum())
    if with_oof:
        out["oof"] = {
            "item": ids,
            "given": y.astype(np.int64),
            "predicted": classes[pred] if len(y) else np.zeros(0, dtype=np.int64),
            "confidence": proba[np.arange(len(y)), pred].astype(np.float32),
            "candidate": issues.candidates,
        }
    out["label_issues_confident"] = int(issues.flagged.sum())
    out["label_thresholds"] = [_r(t) for t in issues.thresholds]
    if random_curve and audit is not None and audit.sum() >= MIN_AUDIT_FOR_CURVE:
        out["random_curve"] = random_sampling_curve(
            X[audit], y[audit], random_state=random_state, C=C
        )
    out["eval_seconds"] = round(time.monotonic() - started, 3)
    return out


def evaluate_safely(X: np.ndarray, y: np.ndarray, **kwargs) -> dict:
    """:func:`evaluate_labels`, but a failure becomes ``{"eval_error": ...}`` (and a log line)
    instead of failing the retrain that calls it: these numbers are extras, the head is not."""
    import logging

    try:
        return evaluate_labels(X, y, **kwargs)
    except Exception as exc:  # noqa: BLE001 - never let the dashboard's extras break a retrain
        logging.getLogger("worker.ml.evaluation").exception("evaluation failed")
        return {"eval_error": f"{type(exc).__name__}: {exc}"}


def measure_version(head: LogisticHead, X: np.ndarray, y: np.ndarray, *,
                    item_ids: np.ndarray, audit: np.ndarray) -> tuple[dict, dict]:
    """The numbers a retrain stores for its version, each computed once.

    ``head`` is the version's fitted head; ``X``, ``y``, ``item_ids``, ``audit`` describe its
    labelled items. The cross-validated accuracy is the accuracy of the head's own out-of-fold
    predictions at the chosen C (``head.cv_proba_``), the same predictions the confusion matrix,
    per-class scores and label errors come from: one number for one version. The audit
    accuracy is that of an *evaluation head* fitted on the non-audit labels only, scored on the
    audit labels (an unbiased estimate, with a Wilson interval).

    Returns ``(metrics, extras)``: ``metrics`` is JSON-ready; ``extras`` holds ``eval_head``
    (None when every label is an audit label), ``eval_train_ids`` and ``oof`` (see
    :func:`evaluate_labels`), which the retrain stores as files.
    """
    from worker.ml.metrics import wilson_interval

    X = np.asarray(X)
    y = np.asarray(y)
    ids = np.asarray(item_ids, dtype=np.int64)
    audit = np.asarray(audit, dtype=bool)
    metrics: dict = {
        "n_labels": int(len(y)),
        "n_classes_labeled": int(len(np.unique(y))),
        "class_counts": {str(k): int(v) for k, v in zip(*np.unique(y, return_counts=True),
                                                        strict=True)},
        "C": float(head.C_),
    }
    eval_head: LogisticHead | None = head
    if audit.any() and (~audit).any():
        eval_head = LogisticHead().fit(X[~audit], y[~audit])
        eval_head.cv_proba_ = None  # not needed, and it would be stored
        correct = int((eval_head.predict(X[audit]) == y[audit]).sum())
        n_audit = int(audit.sum())
        low, high = wilson_interval(correct, n_audit)
        metrics.update(audit_n=n_audit, audit_accuracy=correct / n_audit,
                       audit_ci=[float(low), float(high)])
    elif audit.any():
        eval_head = None
    cv_proba = getattr(head, "cv_proba_", None)
    evaluated = evaluate_safely(X, y, item_ids=ids, audit=audit, C=head.C_, proba=cv_proba,
                                with_oof=True)
    oof = evaluated.pop("oof", None)
    metrics.update(evaluated)
    report = metrics.get("cv_report")
    metrics["cv_accuracy"] = report.get("accuracy") if report else None
    return metrics, {"eval_head": eval_head, "eval_train_ids": ids[~audit], "oof": oof}
