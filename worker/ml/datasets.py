"""Labeled image collections on disk, read for simulations and benchmarks (no Django, no torch).

Two layouts are understood:

* **class folders**: ``DIR/train/<class>/*`` is the pool, ``DIR/test/<class>/*`` and/or
  ``DIR/validation/<class>/*`` are held out (both used when both exist);
* **a label table**: ``DIR/labels.csv`` with columns ``file, split`` and then one column per
  *label set* (e.g. ``type, colour, season``).  ``file`` is relative to ``DIR`` or to
  ``DIR/images``; ``split`` ``train`` is the pool, ``validation`` and ``test`` are held out.  An
  empty cell means "no label in this set" for that image.  A column is a *multi-label* set when
  one of its cells joins several tags with ``|`` (or when named in ``multi_label``); ``|`` alone
  means "labeled, no tag applies" (see :mod:`worker.ml.label_sets`).

:func:`read_label_table` returns every label set at once; :func:`read_multitask` gives all sets
as pool and held-out :class:`TaskSplit` (multi-task use); :func:`scan_dataset` gives one
single-choice set's view as class names + pool and held-out :class:`Split`.
A split keeps every image of the table (label ``-1`` where the chosen set has none) so that all
label sets of one folder share one file list, hence one embedding cache.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.ml.label_sets import MULTI, SINGLE, TAG_SEPARATOR, LabelSet, encode_cells

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
    labels: dict[str, np.ndarray]  # set name -> labels, encoded as in worker.ml.label_sets
    kinds: dict[str, str]  # set name -> "single" | "multi"

    def sets(self) -> list[LabelSet]:
        """The table's label sets, in column order."""
        return [LabelSet(n, self.kinds[n], tuple(c)) for n, c in self.label_sets.items()]


@dataclass
class TaskSplit:
    """Image files of one split with their labels in every set (multi-task use)."""

    paths: list[Path]
    labels: dict[str, np.ndarray]


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
def read_label_table(data_dir: str | Path, multi_label: tuple[str, ...] = ()) -> LabelTable:
    """Read ``DIR/labels.csv`` (see the module docstring); ``ValueError`` on a malformed table.

    ``multi_label``: columns to read as multi-label even if no cell holds two tags.
    """
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
    unknown = sorted(set(multi_label) - set(set_names))
    if unknown:
        raise ValueError(f"{table}: no column(s) {unknown} to read as multi-label")
    label_sets: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for j, name in enumerate(set_names, start=2):
        values = [r[j] for r in rows]
        multi = name in multi_label or any(TAG_SEPARATOR in v for v in values)
        if multi:
            classes = sorted({t.strip() for v in values for t in v.split(TAG_SEPARATOR)} - {""})
        else:
            classes = sorted({v for v in values if v})
        kinds[name] = MULTI if multi else SINGLE
        label_sets[name] = classes
        labels[name] = encode_cells(LabelSet(name, kinds[name], tuple(classes)), values)
    return LabelTable(paths, np.asarray([r[1] for r in rows]), label_sets, labels, kinds)


def _split_rows(table: LabelTable, which: tuple[str, ...]) -> np.ndarray:
    return np.flatnonzero(np.isin(table.splits, which))


def read_multitask(data_dir: str | Path, multi_label: tuple[str, ...] = ()
                   ) -> tuple[list[LabelSet], TaskSplit, TaskSplit]:
    """(label sets, pool, held-out) of a ``labels.csv`` with every set: the multi-task view.

    The pool and held-out file lists are the same as :func:`scan_dataset`'s, so the
    embedding cache is shared with single-set simulations of the same folder.
    """
    root = Path(data_dir)
    if not (root / LABEL_TABLE).is_file():
        raise ValueError(f"{root} has no {LABEL_TABLE}: a multi-task simulation needs one")
    table = read_label_table(root, multi_label)

    def split(which: tuple[str, ...]) -> TaskSplit:
        rows = _split_rows(table, which)
        return TaskSplit([table.paths[i] for i in rows],
                         {k: v[rows] for k, v in table.labels.items()})

    pool, held = split((POOL_SPLIT,)), split(HELD_OUT_SPLITS)
    if not pool.paths or not held.paths:
        raise ValueError(f"{root / LABEL_TABLE}: no pool (train) or no held-out "
                         "(test/validation) rows")
    return table.sets(), pool, held


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
    if table.kinds[label_set] == MULTI:
        raise ValueError(f"{label_set!r} is a multi-label set: simulate it without --label-set "
                         "(the multi-task simulation)")
    y = table.labels[label_set]

    def split(which: tuple[str, ...]) -> Split:
        rows = _split_rows(table, which)
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
