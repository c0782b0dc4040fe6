"""ML core of the lead's views (no Django): label errors, evaluation, projection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from worker.ml.evaluation import (
    confusion_report,
    evaluate_labels,
    evaluate_safely,
    fit_power_law,
    power_law,
    random_sampling_curve,
)
from worker.ml.label_errors import find_label_issues, out_of_fold_proba, per_class_thresholds
from worker.ml.projection import project


def clusters(n_per: int, k: int, d: int = 32, spread: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    y = np.repeat(np.arange(k), n_per)
    X = centers[y] + spread * rng.normal(size=(len(y), d))
    return X.astype(np.float32), y


def test_thresholds_flags_and_ranking_on_known_probabilities():
    proba = np.array([
        [0.9, 0.1, 0.0],   # 0, fine
        [0.8, 0.2, 0.0],   # 0, fine
        [0.1, 0.9, 0.0],   # labelled 0, confidently class 1: an error
        [0.2, 0.7, 0.1],   # 1, fine
        [0.1, 0.8, 0.1],   # 1, fine
        [0.45, 0.35, 0.2],  # labelled 1, model prefers 0 but 0 is under its threshold
        [0.0, 0.1, 0.9],   # 2, fine
    ])
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    t = per_class_thresholds(proba, y)
    np.testing.assert_allclose(t, [0.6, (0.7 + 0.8 + 0.35) / 3, 0.9])
    issues = find_label_issues(proba, y)
    assert issues.flagged.tolist() == [False, False, True, False, False, False, False]
    # The review list also holds row 5 (argmax is another class), ranked after row 2.
    assert issues.ranking.tolist() == [2, 5]
    assert issues.suggested[2] == 1 and issues.suggested[5] == 0
    assert issues.confident_joint.sum() == np.sum(proba >= t, axis=1).astype(bool).sum()
    np.testing.assert_allclose(issues.self_confidence, proba[np.arange(7), y])


def test_out_of_fold_proba_shapes_and_edge_cases():
    X, y = clusters(12, 3)
    y = y * 10 + 5  # arbitrary label ids
    proba, classes = out_of_fold_proba(X, y, C=0.1)
    assert classes.tolist() == [5, 15, 25] and proba.shape == (36, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    assert (proba.argmax(axis=1) == np.searchsorted(classes, y)).mean() > 0.9
    # A class with one example: it is never in its own training folds; still no crash.
    y2 = y.copy()
    y2[0] = 99
    proba, classes = out_of_fold_proba(X, y2, C=0.1)
    assert proba.shape == (36, 4) and proba[0, classes.tolist().index(99)] == 0
    # Too few labels for folds: the class prior.
    proba, _ = out_of_fold_proba(X[:1], y[:1])
    assert proba.tolist() == [[1.0]]


def test_flipped_labels_are_ranked_first_on_clusters():
    X, y = clusters(30, 4, spread=2.0, seed=1)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), 12, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + 1 + rng.integers(0, 3, size=12)) % 4
    result = evaluate_labels(X, noisy, item_ids=np.arange(len(y)) + 1000, C=0.1)
    top = {r["item"] - 1000 for r in result["label_issues"][:24]}
    assert len(top & set(flipped.tolist())) / 12 >= 0.8
    by_item = {r["item"] - 1000: r for r in result["label_issues"]}
    assert all(by_item[i]["suggested"] == y[i] for i in flipped if i in by_item)


def test_confusion_report_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    pred[pred == 3] = 2  # class 3 never predicted: precision 0, not NaN
    rep = confusion_report(y, pred, 4)
    assert rep["matrix"] == confusion_matrix(y, pred, labels=range(4)).tolist()
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    np.testing.assert_allclose(rep["precision"], p, atol=1e-4)
    np.testing.assert_allclose(rep["recall"], r, atol=1e-4)
    np.testing.assert_allclose(rep["f1"], f, atol=1e-4)
    assert rep["support"] == s.tolist() and rep["n"] == 200
    assert rep["accuracy"] == pytest.approx((y == pred).mean(), abs=1e-4)


def test_random_sampling_curve_from_audit_labels():
    X, y = clusters(20, 5, spread=3.0, seed=2)
    assert random_sampling_curve(X[:29], y[:29]) is None  # too few audit labels
    curve = random_sampling_curve(X, y, repeats=3, C=0.1)
    ns = [p["n"] for p in curve["points"]]
    assert ns[0] == 10 and ns[-1] == len(y) - curve["n_test"] and ns == sorted(ns)
    means = [p["mean"] for p in curve["points"]]
    assert means[-1] > means[0] and 0 <= min(means) and max(means) <= 1


def test_power_law_fit_recovers_a_curve():
    ns = np.array([10, 20, 40, 80, 160])
    accs = power_law(ns, 0.9, 1.2, 0.6)
    fit = fit_power_law(ns, accs)
    assert fit["a"] == pytest.approx(0.9, abs=0.02)
    expected = power_law(640, 0.9, 1.2, 0.6)
    assert power_law(640, fit["a"], fit["b"], fit["c"]) == pytest.approx(expected, abs=0.02)
    assert fit_power_law([10, 20], [0.5, 0.6]) is None


def test_evaluate_labels_with_audit_items_is_json_ready():
    import json

    X, y = clusters(25, 3, spread=2.5, seed=4)
    audit = np.zeros(len(y), bool)
    audit[::2] = True
    out = evaluate_labels(X, y, item_ids=np.arange(len(y)), audit=audit, C=0.1)
    json.dumps(out)  # stored in a JSONField
    assert out["audit_report"]["n"] == audit.sum()
    assert out["random_curve"]["n_audit"] == audit.sum()
    assert out["eval_classes"] == [0, 1, 2]
    assert "eval_error" in evaluate_safely(X[:3], y[:2], item_ids=[1, 2, 3])


def test_projection_methods():
    X, y = clusters(30, 4, d=64, spread=1.0, seed=5)
    X16 = X.astype(np.float16)  # stored embeddings are float16
    pca = project(X16, method="pca")
    assert pca.xy.shape == (120, 2) and pca.method == "pca" and np.isfinite(pca.xy).all()
    full = project(X16, method="tsne")
    assert full.method == "tsne" and full.landmarks == 120
    land = project(X16, method="tsne", landmarks=40)
    assert land.method == "landmark-tsne" and land.xy.shape == (120, 2)
    # Clusters stay apart: each point's nearest neighbour on the map is from its own cluster.
    for xy in (full.xy, land.xy):
        d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        assert (y[d.argmin(axis=1)] == y).mean() > 0.95
    assert project(X[:3]).method == "trivial" and project(X[:0]).xy.shape == (0, 2)
    with pytest.raises(ValueError):
        project(X, method="umap")
