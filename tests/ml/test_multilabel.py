"""Multi-label tags: per-tag metrics, thresholds from out-of-fold scores, the binary heads."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ml.multilabel import MultiLabelHead
from worker.ml.multilabel_metrics import best_f1_threshold, multilabel_report


def test_report_by_hand() -> None:
    Y = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [-1, -1]])
    P = np.array([[0.9, 0.2], [0.4, 0.8], [0.6, 0.1], [0.1, 0.3], [0.99, 0.99]])
    r = multilabel_report(Y, P, thresholds=np.array([0.5, 0.25]))
    # tag 0 at 0.5: predicted rows 0, 2 -> tp 1, fp 1, fn 1 (row 1); tag 1 at 0.25: rows 1, 3
    assert r["precision"] == [0.5, 1.0] and r["recall"] == [0.5, 1.0]
    assert r["f1"] == [0.5, 1.0] and r["support"] == [2, 2] and r["n"] == 4  # -1 row ignored
    # AP tag 0: ranking 0.9(+) 0.6(-) 0.4(+) 0.1(-): (1/1 + 2/3) / 2
    assert r["average_precision"][0] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert r["average_precision"][1] == 1.0
    assert r["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2, abs=1e-4)
    assert r["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1), abs=1e-4)


def test_tag_without_positive_has_no_ap() -> None:
    r = multilabel_report(np.array([[0, 1], [0, 0]]), np.array([[0.2, 0.7], [0.1, 0.4]]))
    assert r["average_precision"][0] is None and r["mAP"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        multilabel_report(np.zeros((2, 2)), np.zeros((2, 3)))


def test_best_f1_threshold() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    t = best_f1_threshold(y, p)  # predicting the top 4 gives F1 6/7, the best
    assert 0.2 < t < 0.6
    assert best_f1_threshold(np.zeros(3), p[:3]) == 0.5


def _tags(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12))
    Y = np.stack([X[:, 0] > 0.0, X[:, 1] > 1.2, np.zeros(n, bool)], axis=1).astype(np.int8)
    return X, Y


def test_head_learns_tags_with_thresholds_from_training_labels() -> None:
    X, Y = _tags(400, 0)
    Y_masked = Y.copy()
    Y_masked[:100] = -1  # unlabeled in this set: ignored
    head = MultiLabelHead(random_state=0).fit(X, Y_masked)
    assert head.tag_counts_.tolist() == Y[100:].sum(axis=0).tolist()
    assert head.tag_models_[2] is None  # no positive: a constant, smoothed probability
    Xt, Yt = _tags(400, 1)
    P = head.predict_proba(Xt)
    assert np.allclose(P[:, 2], 1 / 302)
    assert 0.0 < head.thresholds_[1] < 1.0
    r = multilabel_report(Yt, P, head.thresholds_)
    assert r["f1"][0] > 0.85 and r["f1"][1] > 0.6 and r["mAP"] > 0.8
    assert head.predict(Xt).dtype == np.int8
