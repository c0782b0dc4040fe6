"""Learning for one label set at a time, on the shared embeddings: plain numpy in, plain data out.

The product's retrain calls :func:`learn_set` once per label set beyond the project's primary one
(whose head, ranking and metrics the retrain computes as before). Single-choice sets get the
product's softmax head (worker.ml.head.LogisticHead, C by cross-validation) with the same
metrics as the primary set (worker.ml.evaluation.measure_version: confusion matrix, per-class
scores, audit accuracy with its Wilson interval, label issues). Multi-label sets get one binary
logistic head per tag (binary relevance, Tsoumakas & Katakis 2007), each with its own
cross-validated C; their metrics are per-tag precision / recall / F1 at 0.5 and average
precision from out-of-fold probabilities, with the mean average precision over tags, and the
exact-match accuracy of the audit items with its interval.

Kept free of Django and of labeler, like the rest of worker/.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import KFold

from worker.ml.evaluation import measure_version
from worker.ml.head import LogisticHead
from worker.ml.metrics import wilson_interval

THRESHOLD = 0.5
NO_CLASS = -1  # a multi-label prediction of "no tags" in the results arrays


class TagHeads:
    """One calibrated binary logistic head per tag; ``predict_proba`` gives (n, n_tags)."""

    def __init__(self, tags: list[int], cv: int = 3) -> None:
        self.tags = list(tags)
        self.cv = cv

    def fit(self, X: np.ndarray, Y: np.ndarray) -> TagHeads:
        """``Y`` (n, n_tags) of 0/1. A tag never (or always) given is predicted at its rate."""
        self.heads_: list[LogisticHead | float] = []
        for j in range(Y.shape[1]):
            y = Y[:, j].astype(np.int64)
            if y.min() == y.max():
                self.heads_.append(float(y[0]))
                continue
            # Cross-validating C needs the rarer side in every fold: with fewer positives (or
            # negatives) than folds, the head keeps its default C.
            rarer = int(min(y.sum(), len(y) - y.sum()))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                head = LogisticHead(cv=self.cv if rarer >= self.cv else 1).fit(X, y)
            head.cv_proba_ = None  # not needed once fitted, and it would be stored
            self.heads_.append(head)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), len(self.heads_)), dtype=np.float64)
        for j, head in enumerate(self.heads_):
            if isinstance(head, float):
                out[:, j] = head
            else:
                proba = head.predict_proba(X)
                col = np.flatnonzero(head.classes_ == 1)
                out[:, j] = proba[:, col[0]] if len(col) else 0.0
        return out


@dataclass
class SetResult:
    """What one set's learning returns: the head, its metrics (JSON-ready) and, per embedded
    item, the predicted classes (one per item; tags at >= 0.5 for a multi-label set) and the
    confidence of each."""

    head: object
    metrics: dict
    rows: list[tuple[int, int | None, float]] = field(default_factory=list)


def learn_set(
    kind: str,
    classes: list[int],
    X_labeled: np.ndarray,
    targets: list,
    item_ids: np.ndarray,
    audit: np.ndarray,
    all_ids: np.ndarray,
    predict_all,
) -> SetResult:
    """Fit one set's head and predict every embedded item.

    ``targets``: a class id per labelled item (single) or a collection of tag ids (multi).
    ``predict_all(head) -> proba`` predicts the whole store in chunks (the caller owns it).
    """
    if kind == "multi":
        return _learn_tags(classes, X_labeled, targets, audit, all_ids, predict_all)
    y = np.asarray(targets, dtype=np.int64)
    head = LogisticHead().fit(X_labeled, y)
    metrics, _ = measure_version(head, X_labeled, y, item_ids=item_ids, audit=audit)
    head.cv_proba_ = None
    proba = predict_all(head)
    best = proba.argmax(axis=1)
    rows = [(int(i), int(head.classes_[b]), float(proba[r, b]))
            for r, (i, b) in enumerate(zip(all_ids.tolist(), best.tolist(), strict=True))]
    metrics["kind"] = "single"
    return SetResult({"kind": "single", "head": head, "classes": head.classes_.tolist()},
                     metrics, rows)


def _indicator(classes: list[int], targets: list) -> np.ndarray:
    col = {c: j for j, c in enumerate(classes)}
    Y = np.zeros((len(targets), len(classes)), dtype=np.int8)
    for r, tags in enumerate(targets):
        for t in tags:
            if t in col:
                Y[r, col[t]] = 1
    return Y


def _learn_tags(classes, X, targets, audit, all_ids, predict_all) -> SetResult:
    Y = _indicator(classes, targets)
    head = TagHeads(classes).fit(X, Y)
    metrics = tag_metrics(classes, X, Y, audit)
    proba = predict_all(head)
    rows: list[tuple[int, int | None, float]] = []
    for r, item_id in enumerate(all_ids.tolist()):
        on = np.flatnonzero(proba[r] >= THRESHOLD)
        if len(on):
            rows += [(int(item_id), classes[j], float(proba[r, j])) for j in on]
        else:  # "no tags" is a prediction too: its confidence is that of the likeliest tag's absence
            rows.append((int(item_id), None, float(1.0 - proba[r].max(initial=0.0))))
    return SetResult({"kind": "multi", "head": head, "classes": list(classes)}, metrics, rows)


def tag_metrics(classes: list[int], X: np.ndarray, Y: np.ndarray, audit: np.ndarray) -> dict:
    """Per-tag P/R/F1 and AP from 3-fold out-of-fold probabilities, their mean AP, and the
    exact-match accuracy on audit items (a head fitted on the other labels) with its interval."""
    n = len(Y)
    metrics: dict = {"kind": "multi", "n_labels": int(n), "tags": [str(c) for c in classes]}
    if n >= 6:
        oof = np.zeros(Y.shape, dtype=np.float64)
        for train, test in KFold(3, shuffle=True, random_state=0).split(X):
            oof[test] = TagHeads(classes).fit(X[train], Y[train]).predict_proba(X[test])
        pred = oof >= THRESHOLD
        tp = (pred & (Y == 1)).sum(axis=0)
        precision = np.divide(tp, pred.sum(axis=0), out=np.zeros(len(classes)),
                              where=pred.sum(axis=0) > 0)
        recall = np.divide(tp, Y.sum(axis=0), out=np.zeros(len(classes)), where=Y.sum(axis=0) > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(classes)), where=denom > 0)
        ap = [float(average_precision_score(Y[:, j], oof[:, j])) if 0 < Y[:, j].sum() < n
              else None for j in range(len(classes))]
        given = [a for a in ap if a is not None]
        metrics.update(
            precision=[round(float(v), 4) for v in precision],
            recall=[round(float(v), 4) for v in recall],
            f1=[round(float(v), 4) for v in f1],
            support=[int(v) for v in Y.sum(axis=0)],
            average_precision=[None if a is None else round(a, 4) for a in ap],
            map=round(float(np.mean(given)), 4) if given else None,
            cv_exact_match=round(float((pred == (Y == 1)).all(axis=1).mean()), 4),
        )
    audit = np.asarray(audit, dtype=bool)
    if audit.any() and (~audit).sum() >= 2:
        fitted = TagHeads(classes).fit(X[~audit], Y[~audit])
        exact = ((fitted.predict_proba(X[audit]) >= THRESHOLD) == (Y[audit] == 1)).all(axis=1)
        low, high = wilson_interval(int(exact.sum()), int(audit.sum()))
        metrics.update(audit_n=int(audit.sum()), audit_accuracy=float(exact.mean()),
                       audit_ci=[float(low), float(high)])
    return metrics


def rows_to_arrays(set_id: int, rows: list[tuple[int, int | None, float]]) -> dict[str, np.ndarray]:
    """A set's prediction rows as arrays of the worker's results file."""
    return {
        f"set_{set_id}_item": np.array([r[0] for r in rows], dtype=np.int64),
        f"set_{set_id}_label": np.array([NO_CLASS if r[1] is None else r[1] for r in rows],
                                        dtype=np.int64),
        f"set_{set_id}_conf": np.array([r[2] for r in rows], dtype=np.float64),
    }


def learn_sets(sets: list[dict], ids: np.ndarray, matrix, predict_all) -> tuple[dict, dict, dict]:
    """Every planned set (labeler.training.set_training.plan_sets): one :func:`learn_set` call
    each. Returns (metrics by set id, heads by set id, result arrays). A set that fails (too few
    labels of a kind) is reported in its metrics and leaves the others standing."""
    metrics, heads, arrays = {}, {}, {}
    for entry in sets:
        key = str(entry["id"])
        items = np.asarray(entry["items"], dtype=np.int64)
        embedded = np.isin(items, ids)
        if not embedded.any():
            continue
        rows = np.searchsorted(ids, items[embedded])
        targets = [t for t, ok in zip(entry["targets"], embedded.tolist(), strict=True) if ok]
        try:
            result = learn_set(
                entry["kind"], list(entry["classes"]), np.asarray(matrix[rows], dtype=np.float32),
                targets, items[embedded], np.isin(items[embedded], entry["audit"]), ids,
                predict_all,
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            metrics[key] = {"name": entry["name"], "kind": entry["kind"],
                            "error": f"{type(exc).__name__}: {exc}"}
            continue
        metrics[key] = {"name": entry["name"], **result.metrics}
        heads[key] = {"name": entry["name"], **result.head}
        arrays.update(rows_to_arrays(entry["id"], result.rows))
    return metrics, heads, arrays
