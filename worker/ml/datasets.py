"""Labeled image collections on disk, read for simulations and benchmarks (no Django, no torch).

Two layouts are understood:

* **class folders**: ``DIR/train/<class>/*`` is the pool, ``DIR/test/<class>/*`` and/or
  ``DIR/validation/<class>/*`` are held out (both used when both exist);
* **a label table**: ``DIR/labels.csv`` with columns ``file, split`` and then one column per
  *label set* (single-choice each, e.g. ``type, colour, season``).  ``file`` is relative to
  ``DIR`` or to ``DIR/images``; ``split`` ``train`` is the pool, ``validation`` and ``test`` are
  held out.  An empty cell means "no label in this set" for that image.

:func:`read_label_table` returns every label set at once (multi-task use);
:func:`scan_dataset` gives one set's view as class names + pool and held-out :class:`Split`.
A split keeps every image of the table (label ``-1`` where the chosen set has none) so that all
label sets of one folder share one file list, hence one embedding cache.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
HELD_OUT_SPLITS = ("test", "validation")
POOL_SPLIT = "train"
LABEL_TABLE = "labels.csv"
#: Columns of the label table that are not label sets.
TABLE_KEYS = ("file", "split")


@dataclass
class Split:
    """Image files of one split, with their class index (-1: no label in the chosen set)."""

    paths: list[Path]
    y: np.ndarray


@dataclass
class LabelTable:
    """Every row of a ``labels.csv``: file paths, split names, and each label set's labels."""

    paths: list[Path]
    splits: np.ndarray  # str, one per row
    label_sets: dict[str, list[str]]  # set name -> sorted class names
    labels: dict[str, np.ndarray]  # set name -> class index per row (-1 = empty cell)


# -- class folders ---------------------------------------------------------------------------
def _list_split(folder: Path, classes: list[str]) -> Split:
    paths: list[Path] = []
    ys: list[int] = []
    for ci, name in enumerate(classes):
        d = folder / name
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                ys.append(ci)
    return Split(paths, np.asarray(ys, dtype=np.int64))


def _scan_folders(root: Path) -> tuple[list[str], Split, Split]:
    train = root / POOL_SPLIT
    if not train.is_dir():
        raise ValueError(f"{root} has no train/ folder (expected train/<class>/*) and no "
                         f"{LABEL_TABLE}")
    held = [root / s for s in HELD_OUT_SPLITS if (root / s).is_dir()]
    if not held:
        raise ValueError(f"{root} has neither test/ nor validation/ (the held-out images)")
    classes = sorted(d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith("."))
    pool = _list_split(train, classes)
    parts = [_list_split(h, classes) for h in held]
    test = Split([p for s in parts for p in s.paths], np.concatenate([s.y for s in parts]))
    return classes, pool, test


# -- label table -----------------------------------------------------------------------------
def read_label_table(data_dir: str | Path) -> LabelTable:
    """Read ``DIR/labels.csv`` (see the module docstring); ``ValueError`` on a malformed table."""
    root = Path(data_dir)
    table = root / LABEL_TABLE
    with table.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if header[:2] != list(TABLE_KEYS) or len(header) < 3:
            raise ValueError(f"{table}: the header must be 'file,split,<label set>,...'; "
                             f"got {','.join(header) or 'nothing'}")
        set_names = header[2:]
        if len(set(header)) != len(header):
            raise ValueError(f"{table}: repeated column names in {header}")
        rows = [[v.strip() for v in row] for row in reader if any(v.strip() for v in row)]
    if not rows:
        raise ValueError(f"{table} has no rows")
    bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header) or not r[0] or not r[1]]
    if bad:
        raise ValueError(f"{table}: line(s) {bad[:5]} lack a file, a split or some columns")
    first = rows[0][0]
    base = root / "images" if not (root / first).is_file() and (root / "images" / first).is_file() \
        else root
    paths = [base / r[0] for r in rows]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{table}: {len(missing)} listed file(s) not found, e.g. {missing[0]}")
    label_sets: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    for j, name in enumerate(set_names, start=2):
        values = [r[j] for r in rows]
        classes = sorted({v for v in values if v})
        index = {c: i for i, c in enumerate(classes)}
        label_sets[name] = classes
        labels[name] = np.asarray([index.get(v, -1) for v in values], dtype=np.int64)
    return LabelTable(paths, np.asarray([r[1] for r in rows]), label_sets, labels)


def _scan_table(root: Path, label_set: str | None) -> tuple[list[str], Split, Split]:
    table = read_label_table(root)
    names = list(table.label_sets)
    if label_set is None:
        if len(names) > 1:
            raise ValueError(f"{root / LABEL_TABLE} has several label sets ({', '.join(names)}): "
                             "choose one with --label-set")
        label_set = names[0]
    if label_set not in table.label_sets:
        raise ValueError(f"no label set {label_set!r} in {root / LABEL_TABLE}; "
                         f"choose one of: {', '.join(names)}")
    y = table.labels[label_set]

    def split(which: tuple[str, ...]) -> Split:
        rows = np.flatnonzero(np.isin(table.splits, which))
        return Split([table.paths[i] for i in rows], y[rows])

    return table.label_sets[label_set], split((POOL_SPLIT,)), split(HELD_OUT_SPLITS)


# -- either layout ---------------------------------------------------------------------------
def scan_dataset(data_dir: str | Path, label_set: str | None = None
                 ) -> tuple[list[str], Split, Split]:
    """(class names, pool split, held-out split) of either layout; ``ValueError`` if unusable.

    ``label_set`` picks a column of ``labels.csv`` (required when it has several); it is an
    error with class folders, which hold one label set only.
    """
    root = Path(data_dir)
    if (root / LABEL_TABLE).is_file():
        classes, pool, test = _scan_table(root, label_set)
    elif label_set is not None:
        raise ValueError(f"--label-set needs {root / LABEL_TABLE}; {root} has class folders")
    else:
        classes, pool, test = _scan_folders(root)
    if len(classes) < 2:
        raise ValueError(f"{root} needs at least 2 classes, found {classes}")
    if not (pool.y >= 0).any() or not (test.y >= 0).any():
        raise ValueError(f"{root}: no labeled images in the pool (train) or held out "
                         "(test/validation)")
    return classes, pool, test
