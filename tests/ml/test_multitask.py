"""Several label sets: masks, the multi-task head, independent heads, the CV head selector."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ml.head import LogisticHead
from worker.ml.head_selection import INDEPENDENT, MULTITASK, choose_head, fit_heads, score_model
from worker.ml.label_sets import LabelSet, check_labels, encode_cells, labeled_mask
from worker.ml.multitask import IndependentHeads, MultiTaskHead

SETS = [LabelSet("shape", "single", ("a", "b", "c")), LabelSet("tags", "multi", ("x", "y"))]


def _data(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 16)).astype(np.float32)
    shape = np.digitize(X[:, 0], [-0.5, 0.5])
    tags = np.stack([X[:, 1] > 0, X[:, 2] > 0.5], axis=1).astype(np.int8)
    return X, {"shape": shape, "tags": tags}


def test_encoding_and_masks() -> None:
    y = encode_cells(SETS[1], ["x|y", "", "|", "y"])
    assert y.tolist() == [[1, 1], [-1, -1], [0, 0], [0, 1]]
    assert labeled_mask(SETS[1], y).tolist() == [True, False, True, True]
    assert encode_cells(SETS[0], ["b", ""]).tolist() == [1, -1]
    with pytest.raises(ValueError, match="unknown class"):
        encode_cells(SETS[0], ["z"])
    with pytest.raises(ValueError, match="labels"):
        check_labels(SETS, {"shape": np.zeros(3, int)}, 3)
    with pytest.raises(ValueError, match="kind"):
        LabelSet("s", "several", ("a",))


def test_independent_heads_use_each_sets_labeled_rows_only() -> None:
    X, labels = _data(300, 0)
    labels["shape"][:120] = -1
    labels["tags"][200:] = -1
    model = IndependentHeads(SETS).fit(X, labels)
    alone = LogisticHead().fit(X[120:], labels["shape"][120:])
    assert np.allclose(model.set_model("shape").predict_proba(X), alone.predict_proba(X))
    assert model.set_model("tags").tag_counts_.tolist() == labels["tags"][:200].sum(0).tolist()
    P = model.predict_proba(X)
    assert P["shape"].shape == (300, 3) and P["tags"].shape == (300, 2)


def test_multitask_head_masks_and_learns_every_set() -> None:
    X, labels = _data(400, 1)
    labels["shape"][:150] = -1
    labels["tags"][250:] = -1
    mt = MultiTaskHead(SETS, random_state=0).fit(X, labels)
    assert mt.class_counts_["shape"].sum() == 250
    assert mt.class_counts_["tags"].tolist() == labels["tags"][:250].sum(0).tolist()
    # rows labeled in no set change nothing (neither the loss nor the input scaling)
    X_more = np.concatenate([X, np.random.default_rng(9).normal(size=(50, 16)) * 5])
    more = {"shape": np.r_[labels["shape"], -np.ones(50, int)],
            "tags": np.concatenate([labels["tags"], -np.ones((50, 2), np.int8)])}
    mt2 = MultiTaskHead(SETS, random_state=0).fit(X_more.astype(np.float32), more)
    assert np.allclose(mt.predict_proba(X)["shape"], mt2.predict_proba(X)["shape"], atol=1e-5)
    Xt, yt = _data(400, 2)
    got = score_model(mt, SETS, Xt, yt)
    assert got["shape"] > 0.8 and got["tags"] > 0.85
    view = mt.set_model("shape")
    assert view.predict_proba(Xt[:5]).shape == (5, 3) and view.predict(Xt[:5]).shape == (5,)
    assert mt.predict(Xt[:5])["tags"].shape == (5, 2)


def test_a_set_without_labels_has_no_model() -> None:
    X, labels = _data(60, 3)
    labels["tags"][:] = -1
    for model in (IndependentHeads(SETS), MultiTaskHead(SETS, steps=20)):
        model.fit(X, labels)
        assert model.fitted_sets_ == ["shape"] and model.set_model("tags") is None
    with pytest.raises(ValueError, match="no labeled"):
        MultiTaskHead(SETS).fit(X, {"shape": -np.ones(60, int), "tags": labels["tags"]})


def _xor_sets(n: int, seed: int) -> tuple[list[LabelSet], np.ndarray, dict[str, np.ndarray]]:
    """Three sets that all need the same non-linear feature (sign x0 XOR sign x1): a shared
    hidden layer can learn it from every set's labels, a linear head per set cannot."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10)).astype(np.float32)
    xor = (X[:, 0] > 0) ^ (X[:, 1] > 0)
    sets = [LabelSet(f"s{i}", "single", ("no", "yes")) for i in range(3)]
    labels = {f"s{i}": (xor ^ (rng.random(n) < 0.05 * i)).astype(np.int64) for i in range(3)}
    return sets, X, labels


def _linear_sets(n: int, seed: int) -> tuple[list[LabelSet], np.ndarray, dict[str, np.ndarray]]:
    """Unrelated linear sets, and (see the test) a shared layer too narrow for all three."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 40)).astype(np.float32)
    sets = [LabelSet(f"s{i}", "single", ("no", "yes")) for i in range(3)]
    W = np.random.default_rng(1234).normal(size=(40, 3))  # the same tasks for every sample
    labels = {f"s{i}": (X @ W[:, i] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
              for i in range(3)}
    return sets, X, labels


@pytest.mark.parametrize(("make", "hidden"), [(_xor_sets, 128), (_linear_sets, 1)])
def test_selector_picks_the_head_that_is_better_on_held_out_data(make, hidden: int) -> None:
    sets, X, labels = make(240, 0)
    choice = choose_head(sets, X, labels, random_state=0, multitask_params={"hidden": hidden})
    _, Xt, yt = make(2000, 1)
    held = {}
    for kind, model in ((INDEPENDENT, IndependentHeads(sets)),
                        (MULTITASK, MultiTaskHead(sets, hidden=hidden))):
        held[kind] = np.mean(list(score_model(model.fit(X, labels), sets, Xt, yt).values()))
    better = MULTITASK if held[MULTITASK] > held[INDEPENDENT] else INDEPENDENT
    assert abs(held[MULTITASK] - held[INDEPENDENT]) > 0.02, held  # a case with a clear answer
    assert choice.kind == better, (choice, held)
    assert choice.n_folds == 3 and set(choice.per_set) == {s.name for s in sets}
    assert choice.as_dict()["kind"] == better
    if make is _xor_sets:
        assert better == MULTITASK


def test_selector_needs_labels_and_fit_heads_follows_the_choice() -> None:
    sets, X, labels = _xor_sets(8, 0)
    choice = choose_head(sets, X, labels)
    assert choice.kind == INDEPENDENT and "too few" in choice.reason
    sets, X, labels = _xor_sets(240, 0)
    model, choice = fit_heads(sets, X, labels)
    assert isinstance(model, MultiTaskHead) and choice.kind == MULTITASK
    model, _ = fit_heads(sets, X, labels, choice=choose_head(sets, X[:8], {
        k: v[:8] for k, v in labels.items()}))
    assert isinstance(model, IndependentHeads)


def test_models_pickle_with_every_head() -> None:
    """The model download is one joblib file holding every set's head."""
    import io

    import joblib

    X, labels = _data(120, 4)
    for model in (IndependentHeads(SETS), MultiTaskHead(SETS, steps=30)):
        model.fit(X, labels)
        buf = io.BytesIO()
        joblib.dump(model, buf)
        buf.seek(0)
        again = joblib.load(buf)
        for name, P in model.predict_proba(X).items():
            assert np.allclose(again.predict_proba(X)[name], P)


def test_softmax_head_cross_validates_two_classes_with_a_single_rare_label() -> None:
    """A set's labels {9 x A, 1 x B}: one training fold holds A only (crashed before)."""
    X = np.random.default_rng(0).normal(size=(10, 5))
    head = LogisticHead().fit(X, np.array([0] * 9 + [1]))
    assert head.cv_accuracy_ is not None and head.predict_proba(X).shape == (10, 2)
