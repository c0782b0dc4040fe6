"""Label sets: several questions per image, each single-choice or multi-label (no Django).

A project may ask several questions of every image (garment type *and* colour *and* season),
each a *label set*.  The ML core sees a label set as a :class:`LabelSet` (name, kind, classes)
and its labels as one numpy array per set, all rows aligned with the embedding matrix ``X``:

* ``single`` (exactly one class): ``y`` of shape ``(n,)``, int64 class index into
  ``LabelSet.classes``, ``-1`` = this item has no label in this set;
* ``multi`` (any number of tags, none included): ``Y`` of shape ``(n, k)``, int8 0/1 per tag
  (``k = len(classes)``); a row of ``-1`` = this item has no label in this set (a row of zeros
  is a real answer: "none of these tags").

An item may be labeled in some sets only; :func:`labeled_mask` gives the rows that count for a
set, and every learner and metric here respects it.  ``labels`` in the API below is always a
``dict[set name, array]`` in this encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SINGLE = "single"
MULTI = "multi"
KINDS = (SINGLE, MULTI)
#: Tags of a multi-label cell are joined with this (labels.csv, CSV exports).
TAG_SEPARATOR = "|"


@dataclass(frozen=True)
class LabelSet:
    """One question asked of every image: its name, kind (single|multi) and class names."""

    name: str
    kind: str
    classes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"label set {self.name!r}: kind must be one of {KINDS}, "
                             f"got {self.kind!r}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"label set {self.name!r}: repeated class names")
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def is_multi(self) -> bool:
        return self.kind == MULTI


def labeled_mask(label_set: LabelSet, y: np.ndarray) -> np.ndarray:
    """Bool ``(n,)``: rows that carry a label in ``label_set`` (see the module docstring)."""
    y = np.asarray(y)
    if label_set.is_multi:
        if y.ndim != 2 or y.shape[1] != len(label_set.classes):
            raise ValueError(f"multi-label set {label_set.name!r} needs labels (n, "
                             f"{len(label_set.classes)}), got {y.shape}")
        return (y >= 0).all(axis=1)
    if y.ndim != 1:
        raise ValueError(f"single-choice set {label_set.name!r} needs labels (n,), got {y.shape}")
    return y >= 0


def unlabeled(label_set: LabelSet, n: int) -> np.ndarray:
    """Labels for ``n`` items none of which is labeled in ``label_set``."""
    if label_set.is_multi:
        return np.full((n, len(label_set.classes)), -1, dtype=np.int8)
    return np.full(n, -1, dtype=np.int64)


def encode_cells(label_set: LabelSet, cells: Sequence[str]) -> np.ndarray:
    """Labels from text cells (as in labels.csv): ``""`` = unlabeled; multi: ``"a|b"``.

    For a multi-label set a cell of just ``"|"`` means "labeled, no tag applies" (an empty
    cell cannot: it means "not labeled in this set", as for single-choice sets).  Unknown
    class names are a ``ValueError``.
    """
    index = {c: i for i, c in enumerate(label_set.classes)}
    out = unlabeled(label_set, len(cells))
    for row, cell in enumerate(cells):
        cell = cell.strip()
        if not cell:
            continue
        names = [t.strip() for t in cell.split(TAG_SEPARATOR)] if label_set.is_multi else [cell]
        names = [t for t in names if t]
        unknown = [t for t in names if t not in index]
        if unknown:
            raise ValueError(f"label set {label_set.name!r}: unknown class(es) {unknown}")
        if label_set.is_multi:
            out[row] = 0
            out[row, [index[t] for t in names]] = 1
        else:
            out[row] = index[names[0]]
    return out


def check_labels(label_sets: Sequence[LabelSet], labels: Mapping[str, np.ndarray],
                 n: int) -> None:
    """``ValueError`` unless ``labels`` has one well-shaped array of ``n`` rows per set."""
    names = [s.name for s in label_sets]
    if len(set(names)) != len(names):
        raise ValueError(f"repeated label set names: {names}")
    for s in label_sets:
        if s.name not in labels:
            raise ValueError(f"no labels given for set {s.name!r}")
        y = np.asarray(labels[s.name])
        if len(y) != n:
            raise ValueError(f"set {s.name!r}: {len(y)} label rows for {n} items")
        labeled_mask(s, y)
        if not s.is_multi and len(y) and y.max(initial=-1) >= len(s.classes):
            raise ValueError(f"set {s.name!r}: class index beyond its {len(s.classes)} classes")
