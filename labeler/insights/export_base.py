"""What every export shares: file and folder names (the same in the CSV, JSON, COCO and folders
exports, so a file named in one is the same file in every other), the item rows they read, the
model version they describe and the error they raise."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from labeler.items.models import Item
from labeler.items.validation import IMAGE_EXTENSIONS
from labeler.projects.models import Project
from labeler.training.models import ModelVersion

CHUNK = 2000
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class ExportError(ValueError):
    """The export can't be made (e.g. no model yet); the message is for the user."""


def _safe(name: str, fallback: str) -> str:
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:120] or fallback


@dataclass
class Row:
    item: Item
    file: str
    label_id: int | None
    is_audit: bool


class Naming:
    """Unique, safe file names (``<basename>``, or ``<id>-<basename>`` on a clash) and class
    folder names, the same in the CSV, COCO and folders exports."""

    def __init__(self, project: Project) -> None:
        self.used: set[str] = set()
        self.folders: dict[int, str] = {}
        seen: set[str] = set()
        for c in project.classes.all():
            folder = _safe(c.name, f"class-{c.pk}")
            if folder.lower() in seen:
                folder = f"{folder}-{c.pk}"
            seen.add(folder.lower())
            self.folders[c.pk] = folder
        self.names = {c.pk: c.name for c in project.classes.all()}

    def file_for(self, item: Item) -> str:
        base = PurePosixPath(item.original_name.replace("\\", "/").split(":")[-1]).name
        stored_ext = PurePosixPath(item.image.name).suffix
        base = _safe(base, f"item-{item.pk}{stored_ext}")
        if PurePosixPath(base).suffix.lower() not in IMAGE_EXTENSIONS and stored_ext:
            # The stored extension is the decoded format's: evil.html (a JPEG) -> evil.html.jpg.
            base += stored_ext
        name = base
        if name.lower() in self.used:
            name = f"{item.pk}-{base}"
        self.used.add(name.lower())
        return name


def iter_rows(project: Project, labels: dict[int, int], audit: set[int],
              naming: Naming | None = None) -> Iterator[Row]:
    naming = naming or Naming(project)
    qs = Item.objects.filter(project=project).order_by("pk")
    for item in qs.iterator(chunk_size=CHUNK):
        yield Row(item, naming.file_for(item), labels.get(item.pk), item.pk in audit)


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
