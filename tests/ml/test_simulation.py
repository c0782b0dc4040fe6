"""Simulation: layout checks, the curve on synthetic embeddings, and a small real run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from worker.ml import simulate_command
from worker.ml import simulation as sim

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "clothing-small"


def _synthetic(n_classes: int = 4, per: int = 60, dim: int = 24, seed: int = 0) -> sim.Embedded:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 1.2 + 3.0

    def draw(k: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), k)
        return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float16), y

    Xp, yp = draw(per)
    Xt, yt = draw(per // 2)
    return sim.Embedded([f"c{i}" for i in range(n_classes)], Xp, yp, Xt, yt)


def test_reach() -> None:
    assert sim.labels_to_reach([0.5, 0.8, 0.9], [10, 20, 40], 0.79) == 20
    assert sim.labels_to_reach([0.5, 0.6], [10, 20], 0.79) is None


def test_curve_retrains_and_audits_as_the_product(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retrain every ``retrain_every`` labels; about ``audit_share`` of labels off-ranking."""
    data = _synthetic(per=200)
    fits: list[int] = []
    real_fit = sim.LogisticHead.fit

    def counting_fit(self, X, y):
        fits.append(len(y))
        return real_fit(self, X, y)

    ranked: list[np.ndarray] = []
    real_select = sim.select

    def spying_select(*args, **kwargs):
        out = real_select(*args, **kwargs)
        ranked.append((kwargs["batch_size"], out))
        return out

    monkeypatch.setattr(sim.LogisticHead, "fit", counting_fit)
    monkeypatch.setattr(sim, "select", spying_select)
    sim.run_curve(data.X_pool, data.y_pool, data.X_test, data.y_test, "auto", [12, 30], 0,
                  n_classes=4, retrain_every=5, query_pool=40, audit_share=0.0)
    assert fits == [5, 10, 12, 17, 22, 27, 30]
    assert [(b, len(r)) for b, r in ranked] == [(5, 40)] * 7
    # audit share: count the labels that were not the ranking's next unlabeled item
    row_of = {data.X_pool[i].tobytes(): i for i in range(len(data.X_pool))}
    for share, low, high in ((0.0, 0, 0), (0.5, 70, 130)):
        ranked.clear()
        fitted: list[np.ndarray] = []

        def recording_fit(self, X, y, fitted=fitted):
            fitted.append(np.asarray(X))
            return real_fit(self, X, y)

        monkeypatch.setattr(sim.LogisticHead, "fit", recording_fit)
        sim.run_curve(data.X_pool, data.y_pool, data.X_test, data.y_test, "margin", [200], 1,
                      n_classes=4, retrain_every=200, query_pool=200, audit_share=share)
        order = [row_of[x.tobytes()] for x in fitted[0]]
        ranking, done, off = list(ranked[0][1]), set(), 0  # first ranking: pool = everything
        for item in order:
            nxt = next(r for r in ranking if r not in done)
            off += item != nxt
            done.add(item)
        assert low <= off <= high, (share, off)


def test_simulation_defaults_are_the_products() -> None:
    from django.conf import settings

    from labeler.projects.models import Project

    fields = {f.name: f.default for f in Project._meta.get_fields() if hasattr(f, "default")}
    assert sim.RETRAIN_EVERY == fields["retrain_every"]
    assert sim.AUDIT_SHARE == fields["audit_share"]
    assert sim.QUERY_POOL_SIZE == settings.LABELER_QUERY_POOL_SIZE


def test_simulate_on_synthetic_embeddings_writes_layout() -> None:
    result = sim.simulate(None, ["auto", "random"], [4, 8, 16, 400], seeds=2,
                          embedded=_synthetic(), progress=lambda m: None)
    assert result["budgets"] == [4, 8, 16, 240]  # clipped to the pool size
    assert 0.0 < result["full_pool_accuracy"] <= 1.0
    for name in ("auto", "random"):
        r = result["strategies"][name]
        assert len(r["mean"]) == len(r["std"]) == 4 and len(r["per_seed"]) == 2
        assert r["mean"][-1] >= r["mean"][0]
        assert r["labels_to_95pct_full"] in (None, *result["budgets"])
    json.dumps(result)  # JSON-ready
    assert "auto" in sim.format_table(result)


def test_scan_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train"):
        sim.scan_dataset(tmp_path)
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(ValueError, match="test"):
        sim.scan_dataset(tmp_path)


def _real_subset(root: Path, classes: int = 3, pool: int = 30, held: int = 10) -> Path:
    """Symlinks to a few real photos per class (nothing is copied)."""
    names = sorted(d.name for d in (DATASET / "train").iterdir() if d.is_dir())[:classes]
    for split, k in (("train", pool), ("test", held // 2), ("validation", held - held // 2)):
        for name in names:
            (root / split / name).mkdir(parents=True)
            for f in sorted((DATASET / split / name).iterdir())[:k]:
                (root / split / name / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not (DATASET / "train").is_dir():
        pytest.skip(f"real photos not found at {DATASET} (../shared is absent on this machine)")
    base = tmp_path_factory.mktemp("sim")
    data = _real_subset(base / "data")
    opts = {"data": str(data), "strategies": ["auto", "random"], "budgets": "6,12,24",
            "seeds": 1, "backbone": None, "cache_dir": str(base / "cache"),
            "json_out": str(base / "out.json"), "plot": str(base / "out.png")}
    messages: list[str] = []
    result = simulate_command.run_from_args(opts, progress=messages.append)
    return {"base": base, "opts": opts, "result": result, "messages": messages}


def test_simulate_real_subset_curve_rises(real_run: dict) -> None:
    result = real_run["result"]
    assert result["pool_size"] == 90 and result["heldout_size"] == 30
    auto = result["strategies"]["auto"]["mean"]
    assert auto[-1] > auto[0] or auto[0] == 1.0
    assert auto[-1] >= 0.6  # 24 labels of 3 distinct garments
    written = json.loads(Path(real_run["opts"]["json_out"]).read_text())
    assert written["strategies"]["random"]["mean"] == result["strategies"]["random"]["mean"]
    assert Path(real_run["opts"]["plot"]).stat().st_size > 1000
    assert any(m.startswith("embedding 90 pool images") for m in real_run["messages"])


def test_second_run_uses_the_cache(real_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.ml.featurizer as featurizer

    def no_embedding(*args, **kwargs):
        raise AssertionError("re-embedded despite the cache")

    monkeypatch.setattr(featurizer, "Featurizer", no_embedding)
    messages: list[str] = []
    opts = dict(real_run["opts"], strategies=["coverage"], plot=None,
                json_out=str(real_run["base"] / "again.json"))
    result = simulate_command.run_from_args(opts, progress=messages.append)
    assert not any(m.startswith("embedding") for m in messages)
    assert result["pool_size"] == 90
    # the same folder spelled another way (relative, through "..") hits the same cache
    data = Path(real_run["opts"]["data"])
    other = os.path.relpath(data.parent / ".." / data.parent.name / data.name)
    simulate_command.run_from_args(dict(opts, data=other), progress=messages.append)
    assert not any(m.startswith("embedding") for m in messages)


def test_management_command_wraps_the_same_code(real_run: dict,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management import call_command

    out_json = real_run["base"] / "cmd.json"
    call_command("simulate", "--data", real_run["opts"]["data"], "--strategy", "random",
                 "--budgets", "6,12", "--seeds", "1", "--cache-dir",
                 real_run["opts"]["cache_dir"], "--json", str(out_json))
    result = json.loads(out_json.read_text())
    assert list(result["strategies"]) == ["random"] and result["budgets"] == [6, 12]
