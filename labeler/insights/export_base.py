"""What every export shares: file and folder names (the same in the CSV, JSON, COCO and folders
exports, so a file named in one is the same file in every other), the item rows they read, the
model version they describe and the error they raise."""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from labeler.items.models import Item
from labeler.items.validation import IMAGE_EXTENSIONS
from labeler.projects.models import Project
from labeler.training.models import ModelVersion

CHUNK = 2000
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_PLAIN = re.compile(r"[A-Za-z0-9._ -]{1,120}")


class ExportError(ValueError):
    """The export can't be made (e.g. no model yet); the message is for the user."""


def _safe(name: str, fallback: str) -> str:
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:120] or fallback


@dataclass(slots=True)
class ItemRow:
    """The columns of an item the exports write: a plain row, ten times cheaper to build than a
    model instance, which counts at a million items."""

    pk: int
    original_name: str
    image_name: str
    sha256: str
    width: int
    height: int
    created_at: object
    annotation_count: int
    predicted_class_id: int | None
    predicted_confidence: float | None
    current_label_id: int | None
    has_audit_label: bool
    source: str  # the referenced image of a --no-copy item (image_name is empty then)


ROW_FIELDS = ("pk", "original_name", "image", "sha256", "width", "height", "created_at",
              "annotation_count", "predicted_class_id", "predicted_confidence",
              "current_label_id", "has_audit_label", "source")


@dataclass(slots=True)
class Row:
    item: ItemRow
    file: str
    label_id: int | None
    is_audit: bool


def _name(path: str) -> str:
    """PurePosixPath(path).name without pathlib, which interns every part it parses (a table
    that grows with the distinct names of a million-item export)."""
    parts = [p for p in path.split("/") if p and p != "."]
    return parts[-1] if parts else ""


def _suffix(name: str) -> str:
    """PurePosixPath(name).suffix, likewise."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def _base_name(pk: int, original_name: str, stored: str) -> str:
    """An item's safe file name before clashes are resolved: its original base name, with the
    decoded format's extension when the original has none an image could have."""
    if (_PLAIN.fullmatch(original_name) and original_name[0] not in " ."
            and original_name[-1] not in " ." and _suffix(original_name).lower() in IMAGE_EXTENSIONS):
        return original_name  # the usual case, and what the steps below would give
    base = _name(original_name.replace("\\", "/").split(":")[-1])
    stored_ext = _suffix(_name(stored))
    base = _safe(base, f"item-{pk}{stored_ext}")
    if _suffix(base).lower() not in IMAGE_EXTENSIONS and stored_ext:
        # The stored extension is the decoded format's: evil.html (a JPEG) -> evil.html.jpg.
        base += stored_ext
    return base


class Naming:
    """Unique, safe file names (``<basename>``, or ``<id>-<basename>`` on a clash) and class
    folder names, the same in the CSV, COCO and folders exports.

    Memory stays small at any pool size and however many names clash: one pass over the names
    keeps a 64-bit hash and the id of each item (16 MB per million), which says for each name
    that several items would take which of them (the lowest id) keeps it. Nothing is remembered
    while the export runs, and a name does not depend on the order items are asked for. A
    ``<id>-`` name is checked against every item's name, so it never takes one another keeps.
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self.folders: dict[int, str] = {}
        seen: set[str] = set()
        for c in project.classes.all():
            folder = _safe(c.name, f"class-{c.pk}")
            if folder.lower() in seen:
                folder = f"{folder}-{c.pk}"
            seen.add(folder.lower())
            self.folders[c.pk] = folder
        self.names = {c.pk: c.name for c in project.classes.all()}
        self._all: np.ndarray | None = None
        self._keeper: dict[int, int] = {}  # hash of a clashing name -> the id that keeps it

    def _scan(self) -> None:
        hashes, ids = array("q"), array("q")
        rows = Item.objects.filter(project=self.project).order_by().values_list(
            "pk", "original_name", "image")
        for pk, original, stored in rows.iterator(chunk_size=CHUNK):
            hashes.append(hash(_base_name(pk, original, stored).lower()))
            ids.append(pk)
        h, pk = np.frombuffer(hashes, dtype=np.int64), np.frombuffer(ids, dtype=np.int64)
        order = np.lexsort((pk, h))  # by name hash, then id
        h, pk = h[order], pk[order]
        starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, int)
        clashing = starts[np.diff(np.r_[starts, len(h)]) > 1]
        self._all = h
        self._keeper = dict(zip(h[clashing].tolist(), pk[clashing].tolist(), strict=True))

    def _taken(self, name: str) -> bool:
        h = hash(name.lower())
        i = int(np.searchsorted(self._all, h))
        return i < len(self._all) and int(self._all[i]) == h

    def file_for(self, item: Item) -> str:
        return self.name_for(item.pk, item.original_name, item.image.name)

    def name_for(self, pk: int, original_name: str, image_name: str) -> str:
        if self._all is None:
            self._scan()
        base = _base_name(pk, original_name, image_name)
        keeper = self._keeper.get(hash(base.lower()))
        if keeper is None or keeper == pk:
            return base
        name = f"{pk}-{base}"
        while self._taken(name):
            name = f"{pk}-{name}"
        return name


def iter_rows(project: Project, naming: Naming | None = None) -> Iterator[Row]:
    """Every item in id order with its export name and its current label and audit flag (the
    denormalised columns: labeler.annotations.current), read in chunks (a server-side cursor on
    PostgreSQL)."""
    naming = naming or Naming(project)
    qs = Item.objects.filter(project=project).order_by("pk").values_list(*ROW_FIELDS)
    for values in qs.iterator(chunk_size=CHUNK):
        item = ItemRow(*values)
        yield Row(item, naming.name_for(item.pk, item.original_name, item.image_name),
                  item.current_label_id, item.has_audit_label)


def ready_version(project: Project, number: int | None = None) -> ModelVersion:
    qs = project.model_versions.filter(status="ready")
    version = qs.filter(number=number).first() if number else qs.order_by("-number").first()
    if version is None:
        raise ExportError("No trained model yet: label some images first."
                          if number is None else f"No ready model version {number}.")
    return version


def ready_head(project: Project, number: int | None = None) -> tuple[ModelVersion, dict]:
    """The ready version (latest, or ``number``) and its head bundle; ExportError if missing."""
    from . import services

    version = ready_version(project, number)
    bundle = services.load_head(version)
    if bundle is None:
        raise ExportError(f"The head file of v{version.number} is missing.")
    return version, bundle
