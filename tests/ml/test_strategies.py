"""Query strategies: distinct indices, fallbacks, cold-start coverage, the auto switch, scale."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from worker.ml import strategies as st
from worker.ml.head import LogisticHead
from worker.ml.modal_compat import classifier_margin
from worker.ml.ranking import block_scores
from worker.ml.strategies import DEFAULT_STRATEGY, STRATEGIES, get_strategy, select

NAMES = sorted(STRATEGIES)


def _blobs(k: int = 10, per: int = 60, dim: int = 32, seed: int = 0, spread: float = 0.15):
    """k well separated Gaussian blobs; returns (X, blob id)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), per)
    X = centres[y] + spread * rng.normal(size=(len(y), dim)) / np.sqrt(dim)
    return X.astype(np.float32), y


class _ConstantModel:
    """A 'fitted' model whose probabilities are all equal: every item ties."""

    classes_ = np.array([0, 1, 2])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), 3), 1 / 3)


def _models(X: np.ndarray, y: np.ndarray) -> dict[str, object]:
    return {
        "none": None,
        "single_class": LogisticHead().fit(X[:5], np.zeros(5, dtype=int)),
        "three_classes": LogisticHead().fit(X[y < 3][::10], y[y < 3][::10]),
        "ties": _ConstantModel(),
    }


@pytest.mark.parametrize("name", NAMES)
def test_distinct_indices_in_every_situation(name: str) -> None:
    X, y = _blobs()
    for label, model in _models(X, y).items():
        for n in (1, 7, 25):
            idx = select(name, model, X, n, X_labeled=X[:5], random_state=0, n_classes=10)
            assert idx.dtype == np.int64, (name, label)
            assert len(idx) == n and len(set(idx.tolist())) == n, (name, label, n)
            assert idx.min() >= 0 and idx.max() < len(X)
        everything = select(name, model, X[:30], 100, random_state=1)
        assert sorted(everything.tolist()) == list(range(30)), (name, label)
        assert len(select(name, model, X, 0)) == 0


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_seed_and_pool_of_one(name: str) -> None:
    X, y = _blobs()
    model = LogisticHead().fit(X[::7], y[::7])
    a = select(name, model, X, 12, X_labeled=X[::7], random_state=3, n_classes=10)
    b = select(name, model, X, 12, X_labeled=X[::7], random_state=3, n_classes=10)
    assert a.tolist() == b.tolist()
    assert select(name, model, X[:1], 5, random_state=0).tolist() == [0]


def test_ties_are_broken_at_random() -> None:
    X, _ = _blobs()
    picks = {
        tuple(select("least_confident", _ConstantModel(), X, 5, random_state=s)) for s in range(5)
    }
    assert len(picks) > 1


@pytest.mark.parametrize("name", ["coverage", "auto"])
def test_cold_start_covers_every_cluster(name: str) -> None:
    X, blob = _blobs(k=10, per=100)
    for seed in range(3):
        idx = select(name, None, X, 10, random_state=seed, n_classes=10)
        assert sorted(blob[idx].tolist()) == list(range(10)), seed


@pytest.mark.parametrize("name", ["coverage", "auto"])
def test_long_ranking_starts_with_a_covering_batch(name: str) -> None:
    """The product ranks 300 items but retrains after ``batch_size``: that prefix must cover."""
    X, blob = _blobs(k=10, per=100)
    for seed in range(3):
        idx = select(name, None, X, 300, random_state=seed, n_classes=10, batch_size=10)
        assert len(set(idx.tolist())) == 300
        assert sorted(blob[idx[:10]].tolist()) == list(range(10)), seed


def test_diversity_prefix_is_a_diverse_batch_then_uncertainty() -> None:
    X, blob = _blobs(k=10, per=100)
    labeled = np.concatenate([np.flatnonzero(blob == b)[:3] for b in range(10)])
    model = LogisticHead().fit(X[labeled], blob[labeled])
    idx = select("diversity", model, X, 300, X_labeled=X[labeled], random_state=0, batch_size=10)
    assert len(set(idx.tolist())) == 300
    assert len(set(blob[idx[:10]].tolist())) >= 5
    margin = 1.0 - block_scores(classifier_margin, model, X)
    rest = margin[idx[10:]]
    assert (np.diff(rest) <= 1e-12).all()  # after the batch: most uncertain first


def test_coverage_goes_to_uncovered_clusters() -> None:
    X, blob = _blobs(k=10, per=100)
    labeled = np.array([np.flatnonzero(blob == b)[0] for b in range(6)])  # 6 blobs labeled
    pool = np.flatnonzero(blob >= 0)
    pool = np.setdiff1d(pool, labeled)
    idx = select("coverage", None, X[pool], 4, X_labeled=X[labeled], random_state=0)
    assert sorted(blob[pool[idx]].tolist()) == [6, 7, 8, 9]


def test_coverage_picks_typical_items() -> None:
    """Within a blob the pick is near its dense centre, not an outlier."""
    X, blob = _blobs(k=1, per=400, spread=1.0)
    idx = select("coverage", None, X, 1, random_state=0)
    dist = np.linalg.norm(X - X.mean(0), axis=1)
    assert dist[idx[0]] < np.quantile(dist, 0.25)


def test_uncertainty_strategies_prefer_the_boundary() -> None:
    rng = np.random.default_rng(0)
    dim = 8
    base, e0, e1 = np.full(dim, 3.0), np.eye(dim)[0], np.eye(dim)[1]  # positive, like CNN features
    X_lab = np.concatenate(
        [
            base + 2 * e0 + 0.3 * rng.normal(size=(20, dim)),
            base + 2 * e1 + 0.3 * rng.normal(size=(20, dim)),
        ]
    )
    y_lab = np.repeat([0, 1], 20)
    model = LogisticHead().fit(X_lab, y_lab)
    pool = np.stack(
        [
            base + 2.5 * e0,
            base + e0 + e1,
            base + 2.5 * e1,
            base + 1.05 * e0 + 0.95 * e1,
            base + 2 * e0 + 0.2 * e1,
        ]
    )
    for name in ("least_confident", "margin", "entropy"):
        assert set(select(name, model, pool, 2, random_state=0).tolist()) == {1, 3}, name


def test_diversity_spreads_the_batch() -> None:
    """Top-n uncertainty piles onto one boundary region; diversity spreads over several."""
    X, blob = _blobs(k=10, per=100)
    labeled = np.concatenate([np.flatnonzero(blob == b)[:3] for b in range(10)])
    model = LogisticHead().fit(X[labeled], blob[labeled])
    picked = select("diversity", model, X, 10, X_labeled=X[labeled], random_state=0)
    assert len(set(blob[picked].tolist())) >= 5


def test_auto_switches_from_coverage_to_diversity(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("coverage", "diversity"):
        real = STRATEGIES[name]

        def spy(*args, _name=name, _real=real, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setitem(STRATEGIES, name, spy)
    X, blob = _blobs(k=4, per=50)
    per_class = st.AUTO_LABELS_PER_CLASS
    few = np.concatenate([np.flatnonzero(blob == b)[:2] for b in range(4)])
    many = np.concatenate([np.flatnonzero(blob == b)[:per_class] for b in range(4)])
    select("auto", None, X, 4, random_state=0, n_classes=4)
    select(
        "auto",
        LogisticHead().fit(X[few], blob[few]),
        X,
        4,
        X_labeled=X[few],
        random_state=0,
        n_classes=4,
    )
    select(
        "auto",
        LogisticHead().fit(X[many], blob[many]),
        X,
        4,
        X_labeled=X[many],
        random_state=0,
        n_classes=4,
    )
    # 4 * per_class labels but the project has 10 classes: still too few per class
    select(
        "auto",
        LogisticHead().fit(X[many], blob[many]),
        X,
        4,
        X_labeled=X[many],
        random_state=0,
        n_classes=10,
    )
    assert calls == ["coverage", "coverage", "diversity", "coverage"]
    assert st.auto_choice(0, None) == "coverage"
    assert st.auto_choice(per_class * 3 - 1, 3) == "coverage"
    assert st.auto_choice(per_class * 3, 3) == "diversity"


def test_registry() -> None:
    assert DEFAULT_STRATEGY == "auto" and DEFAULT_STRATEGY in STRATEGIES
    assert {
        "random",
        "least_confident",
        "margin",
        "entropy",
        "diversity",
        "badge",
        "balanced",
        "coverage",
        "auto",
    } <= set(STRATEGIES)
    assert get_strategy("margin") is STRATEGIES["margin"]
    with pytest.raises(ValueError, match="coverage"):
        get_strategy("nope")


@pytest.mark.parametrize("name", ["coverage", "diversity", "margin", "badge", "balanced"])
def test_million_item_pool_bounded_memory(name: str) -> None:
    """1M float16 items: no O(N^2) memory, and done in seconds."""
    rng = np.random.default_rng(0)
    N, dim = 1_000_000, 32
    X = rng.standard_normal((N, dim), dtype=np.float32).astype(np.float16)
    y_lab = np.arange(200) % 5
    X_lab = X[:200].astype(np.float32)
    model = LogisticHead().fit(X_lab, y_lab)
    tracemalloc.start()
    t0 = time.perf_counter()
    idx = select(name, model, X, 200, X_labeled=X_lab, random_state=0, n_classes=5)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(set(idx.tolist())) == 200
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < 60, f"{elapsed:.1f}s"


def test_coverage_with_a_model_balances_predicted_classes() -> None:
    """Uncovered clusters of the class with the fewest labels come before bigger ones."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 32))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    blob = np.repeat(np.arange(8), 100)
    X = (centres[blob] + 0.15 * rng.normal(size=(len(blob), 32)) / np.sqrt(32)).astype(np.float32)
    cls = (blob >= 4).astype(int)  # class 0: blobs 0-3, class 1: blobs 4-7
    lab = np.concatenate([np.flatnonzero(blob == b)[: 3 if b < 4 else 1] for b in range(8)])
    model = LogisticHead().fit(X[lab], cls[lab])  # 12 labels of class 0, 4 of class 1
    plain_class_0 = 0
    for seed in range(4):
        plain = select("coverage", None, X, 8, random_state=seed, batch_size=8)[:4]
        plain_class_0 += int((cls[plain] == 0).sum())  # plain TypiClust: blind to classes
        balanced = select("coverage", model, X, 8, random_state=seed, batch_size=8)[:4]
        assert cls[balanced].tolist() == [1, 1, 1, 1], seed  # rarest predicted class first
        assert len(set(blob[balanced].tolist())) == 4, seed  # and still one per cluster
    assert plain_class_0 >= 4
