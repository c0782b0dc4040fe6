"""worker.set_learning on its own (plain numpy): tag heads with few or no positives, and per-tag
metrics that could fail."""

from __future__ import annotations

import numpy as np

from worker.set_learning import TagHeads, learn_set, tag_metrics


def test_tag_heads_survive_rare_and_constant_tags():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 5)).astype(np.float32)
    Y = np.zeros((8, 3), dtype=np.int8)
    Y[0, 0] = 1                      # one positive: no C to cross-validate
    Y[:, 2] = 1                      # always on
    proba = TagHeads([10, 11, 12]).fit(X, Y).predict_proba(X)
    assert proba.shape == (8, 3)
    assert np.all(proba[:, 1] == 0) and np.all(proba[:, 2] == 1)


def test_tag_metrics_find_a_learnable_tag_and_miss_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 6))
    Y = np.stack([(X[:, 0] > 0), rng.random(120) < 0.5], axis=1).astype(np.int8)
    m = tag_metrics([1, 2], X, Y, audit=np.arange(120) % 5 == 0)
    assert m["average_precision"][0] > 0.9 > m["average_precision"][1]
    assert m["f1"][0] > 0.8 and 0 <= m["audit_accuracy"] <= 1 and m["audit_n"] == 24
    low, high = m["audit_ci"]
    assert low <= m["audit_accuracy"] <= high


def test_learn_set_single_and_multi_rows():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.where(X[:, 1] > 0, 7, 9)
    ids = np.arange(100, 160)
    single = learn_set("single", [7, 9], X, y.tolist(), ids, np.zeros(60, bool), ids,
                       lambda h: h.predict_proba(X))
    assert {r[1] for r in single.rows} <= {7, 9} and len(single.rows) == 60
    assert single.metrics["cv_accuracy"] > 0.8
    tags = [{7} if v == 7 else set() for v in y]
    multi = learn_set("multi", [7], X, tags, ids, np.zeros(60, bool), ids,
                      lambda h: h.predict_proba(X))
    on = {r[0] for r in multi.rows if r[1] == 7}
    off = {r[0] for r in multi.rows if r[1] is None}
    assert on | off == set(ids.tolist()) and not on & off
    assert len(on & set(ids[y == 7].tolist())) > 0.8 * (y == 7).sum()
