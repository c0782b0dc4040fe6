"""simulate with several label sets: labels.csv with tags, the joint loop, the real photos."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from worker.ml import multitask_simulation as msim
from worker.ml.datasets import read_label_table, read_multitask, scan_dataset
from worker.ml.label_sets import LabelSet
from worker.ml.multitask_report import comparisons, format_multitask, plot_multitask
from worker.ml.simulate_command import is_multitask, run_from_args

FASHION = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "fashion-multitask"


def _table(root: Path, header: str, rows: list[str]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        (root / "images" / r.split(",")[0]).write_bytes(b"x")
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


ROWS = ["a.jpg,train,shirt,red|blue", "b.jpg,train,shoe,", "c.jpg,train,,|",
        "d.jpg,test,shoe,blue", "e.jpg,validation,shirt,green"]


def test_labels_csv_with_tags(tmp_path: Path) -> None:
    _table(tmp_path, "file,split,type,tags", ROWS)
    t = read_label_table(tmp_path)
    assert t.kinds == {"type": "single", "tags": "multi"}
    assert t.label_sets["tags"] == ["blue", "green", "red"]
    assert t.labels["tags"].tolist()[:3] == [[1, 0, 1], [-1, -1, -1], [0, 0, 0]]
    sets, pool, held = read_multitask(tmp_path)
    assert sets[1] == LabelSet("tags", "multi", ("blue", "green", "red"))
    assert [p.name for p in pool.paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert pool.labels["type"].tolist() == [0, 1, -1]
    assert held.labels["tags"].tolist() == [[1, 0, 0], [0, 1, 0]]
    assert is_multitask(tmp_path, None) and not is_multitask(tmp_path, "type")
    with pytest.raises(ValueError, match="multi-label set"):
        scan_dataset(tmp_path, "tags")
    # a column of single tags is read as multi-label when asked
    _table(tmp_path, "file,split,type,tags", [r.replace("red|blue", "red").replace(",|", ",")
                                              for r in ROWS])
    assert read_label_table(tmp_path).kinds["tags"] == "single"
    assert read_label_table(tmp_path, ("tags",)).kinds["tags"] == "multi"
    with pytest.raises(ValueError, match="no column"):
        read_label_table(tmp_path, ("colour",))


def _synthetic(seed: int = 0) -> msim.MultiEmbedded:
    rng = np.random.default_rng(seed)
    sets = [LabelSet("kind", "single", ("a", "b", "c")), LabelSet("tags", "multi", ("x", "y"))]

    def draw(n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        X = rng.normal(size=(n, 16))
        kind = np.digitize(X[:, 0], [-0.4, 0.4])
        kind[rng.random(n) < 0.1] = -1  # some items unlabeled in a set
        tags = (X[:, 1:3] > 0.3).astype(np.int8)
        return X.astype(np.float16), {"kind": kind, "tags": tags}

    (Xp, yp), (Xt, yt) = draw(240), draw(120)
    return msim.MultiEmbedded(sets, Xp, yp, Xt, yt)


def test_joint_loop_retrains_and_reports_per_set(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _synthetic()
    fits: list[tuple[int, tuple[str, ...]]] = []
    real_fit = msim.IndependentHeads.fit

    def counting_fit(self, X, labels):
        fits.append((len(X), tuple(s.name for s in self.label_sets)))
        return real_fit(self, X, labels)

    monkeypatch.setattr(msim.IndependentHeads, "fit", counting_fit)
    msim.run_joint_curve(data, "set:kind", [10, 20], 0, retrain_every=5, query_pool=40,
                         audit_share=0.1)
    # only the selecting set between budgets, every set at a budget
    assert fits == [(5, ("kind",)), (10, ("kind", "tags")), (15, ("kind",)),
                    (20, ("kind", "tags"))]
    fits.clear()
    msim.run_joint_curve(data, "random", [10, 20], 0, retrain_every=5, query_pool=40,
                         audit_share=0.1)
    assert [n for n, _ in fits] == [10, 20]


def test_simulate_multitask_result_table_and_plots(tmp_path: Path) -> None:
    messages: list[str] = []
    r = msim.simulate_multitask(None, ["auto", "random", "set:tags"], [10, 30], 2, "none", "",
                                5, 50, 0.1, messages.append, embedded=_synthetic())
    assert r["mode"] == "multitask" and r["budgets"] == [10, 30]
    assert set(r["strategies"]) == {"auto", "random", "set:tags"}
    assert len(r["strategies"]["auto"]["tags"]["per_seed"]) == 2
    assert all(0 <= v <= 1 for v in r["strategies"]["auto"]["kind"]["mean"])
    heads = r["heads"]["auto"]
    assert set(heads) == {"independent", "multitask", "chosen", "multitask_chosen_share"}
    comp = comparisons(r)
    assert {(c["against"], c["set"]) for c in comp} == {
        ("random", "kind"), ("random", "tags"), ("set:tags", "kind")}  # not set:tags on tags
    text = format_multitask(r)
    assert "auto minus other" in text and "% multitask" in text
    plot_multitask(r, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert (tmp_path / "p-heads.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown strategy"):
        msim.simulate_multitask(None, ["margin"], [10], 1, "none", "", 5, 50, 0.1,
                                messages.append, embedded=_synthetic())


def test_simulate_reads_labels_csv_of_real_photos(tmp_path: Path) -> None:
    """The command line on a small labels.csv of real photos with two sets (one as tags)."""
    if not (FASHION / "labels.csv").is_file():
        pytest.skip(f"fashion-multitask not found at {FASHION} (../shared is absent)")
    full = read_label_table(FASHION)
    keep: list[int] = []
    for split, k in (("train", 20), ("test", 6)):
        for c in range(3):
            keep += list(np.flatnonzero((full.splits == split) & (full.labels["type"] == c))[:k])
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    lines = ["file,split,type,look"]
    for i in keep:
        p = full.paths[i]
        os.symlink(p, data / "images" / p.name)
        look = "|".join([full.label_sets["colour"][full.labels["colour"][i]],
                         full.label_sets["usage"][full.labels["usage"][i]]])
        lines.append(f"{p.name},{full.splits[i]},"
                     f"{full.label_sets['type'][full.labels['type'][i]]},{look}")
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    messages: list[str] = []
    opts = {"data": str(data), "label_set": None, "strategies": None, "budgets": "10,30",
            "seeds": 1, "cache_dir": str(tmp_path / "cache"), "json_out": str(tmp_path / "r.json"),
            "plot": str(tmp_path / "r.png"), "select_for": ["type"]}
    r = run_from_args(opts, progress=messages.append)
    assert json.loads((tmp_path / "r.json").read_text())["strategies"] == r["strategies"]
    assert [s["kind"] for s in r["label_sets"]] == ["single", "multi"]
    assert set(r["strategies"]) == {"auto", "random", "set:type"}
    assert r["pool_size"] == 60 and r["full_pool"]["type"] >= 0.75
    assert (tmp_path / "r-heads.png").is_file()
    assert sum(m.startswith("embedding") for m in messages) == 2
