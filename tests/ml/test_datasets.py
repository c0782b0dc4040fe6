"""Dataset reading: class folders and labels.csv with several label sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from worker.ml import simulate_command
from worker.ml import simulation as sim
from worker.ml.datasets import read_label_table, scan_dataset

FASHION = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "fashion-multitask"


def _table(root: Path, rows: list[str], header: str = "file,split,type,colour",
           under: str = "images") -> Path:
    (root / under).mkdir(parents=True, exist_ok=True)
    for r in rows:
        (root / under / r.split(",")[0]).write_bytes(b"x")
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


ROWS = ["a.jpg,train,shirt,red", "b.jpg,train,shoe,", "c.jpg,train,shirt,blue",
        "d.jpg,test,shoe,red", "e.jpg,validation,shirt,blue", "f.jpg,other,shoe,red"]


def test_label_table_reads_every_set(tmp_path: Path) -> None:
    t = read_label_table(_table(tmp_path, ROWS))
    assert t.label_sets == {"type": ["shirt", "shoe"], "colour": ["blue", "red"]}
    assert t.labels["type"].tolist() == [0, 1, 0, 1, 0, 1]
    assert t.labels["colour"].tolist() == [1, -1, 0, 1, 0, 1]  # empty cell: no label
    assert t.paths[0] == tmp_path / "images" / "a.jpg"
    assert t.splits.tolist() == ["train", "train", "train", "test", "validation", "other"]


def test_one_label_set_as_pool_and_held_out(tmp_path: Path) -> None:
    _table(tmp_path, ROWS)
    classes, pool, held = scan_dataset(tmp_path, "colour")
    assert classes == ["blue", "red"]
    assert [p.name for p in pool.paths] == ["a.jpg", "b.jpg", "c.jpg"]  # the unlabeled b stays
    assert pool.y.tolist() == [1, -1, 0]
    assert [p.name for p in held.paths] == ["d.jpg", "e.jpg"]  # 'other' split is neither
    _, pool_t, _ = scan_dataset(tmp_path, "type")
    assert pool_t.paths == pool.paths  # same files for every set: one embedding cache


def test_files_next_to_the_table(tmp_path: Path) -> None:
    _table(tmp_path, [r.rsplit(",", 1)[0] for r in ROWS[:4]], header="file,split,type", under=".")
    classes, pool, _ = scan_dataset(tmp_path)  # a single set needs no --label-set
    assert classes == ["shirt", "shoe"] and pool.paths[0] == tmp_path / "a.jpg"


@pytest.mark.parametrize(("label_set", "message"), [(None, "several label sets"),
                                                     ("season", "no label set 'season'")])
def test_label_set_choice_errors(tmp_path: Path, label_set: str | None, message: str) -> None:
    _table(tmp_path, ROWS)
    with pytest.raises(ValueError, match=message):
        scan_dataset(tmp_path, label_set)


def test_malformed_tables(tmp_path: Path) -> None:
    _table(tmp_path, ROWS, header="path,split,type,colour")
    with pytest.raises(ValueError, match="header"):
        read_label_table(tmp_path)
    _table(tmp_path, ROWS)
    (tmp_path / "images" / "c.jpg").unlink()
    with pytest.raises(ValueError, match="not found"):
        read_label_table(tmp_path)
    for bad in (",train,shoe,red", "g.jpg,train,shoe"):
        _table(tmp_path, ROWS)
        (tmp_path / "labels.csv").write_text((tmp_path / "labels.csv").read_text() + bad + "\n")
        with pytest.raises(ValueError, match="line"):
            read_label_table(tmp_path)
    _table(tmp_path, ["a.jpg,train,shirt,red", "d.jpg,test,shirt,red"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        scan_dataset(tmp_path, "type")


def test_label_set_needs_a_table(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            (tmp_path / split / c / "x.jpg").write_bytes(b"x")
    assert scan_dataset(tmp_path)[0] == ["a", "b"]
    with pytest.raises(ValueError, match="labels.csv"):
        scan_dataset(tmp_path, "type")


def test_simulate_each_label_set_of_real_photos_from_one_cache(tmp_path: Path) -> None:
    """Two label sets of the same photos: embedded once, each simulated with its own classes."""
    if not (FASHION / "labels.csv").is_file():
        pytest.skip(f"fashion-multitask not found at {FASHION} (../shared is absent)")
    full = read_label_table(FASHION)
    keep: list[int] = []
    for split, k in (("train", 12), ("test", 4)):
        for c in range(3):  # a few photos of the first three types
            keep += list(np.flatnonzero((full.splits == split) & (full.labels["type"] == c))[:k])
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    lines = ["file,split,type,colour"]
    for i in keep:
        p = full.paths[i]
        os.symlink(p, data / "images" / p.name)
        colour = full.label_sets["colour"][full.labels["colour"][i]]
        lines.append(f"{p.name},{full.splits[i]},{full.label_sets['type'][full.labels['type'][i]]},"
                     f"{colour}")
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    messages: list[str] = []
    runs = {}
    runs["type"] = sim.simulate(data, ["random"], [6, 24], seeds=1, label_set="type",
                                cache_dir=tmp_path / "cache", progress=messages.append)
    opts = {"data": str(data), "label_set": "colour", "strategies": ["random"], "budgets": "6,24",
            "seeds": 1, "cache_dir": str(tmp_path / "cache"), "json_out": str(tmp_path / "c.json"),
            "plot": str(tmp_path / "c.png")}  # the command line's path, plot included
    runs["colour"] = simulate_command.run_from_args(opts, progress=messages.append)
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert sum(m.startswith("embedding") for m in messages) == 2  # pool + held out, once
    assert runs["type"]["classes"] == full.label_sets["type"][:3]
    assert set(runs["colour"]["classes"]) <= set(full.label_sets["colour"])
    assert runs["type"]["label_set"] == "type" and runs["type"]["pool_size"] == 36
    assert runs["type"]["full_pool_accuracy"] >= 0.75  # shirts, shoes, watches: visual
