"""The second demo project: product photos with several label sets (garment type, colour,
season, usage: single choice; free tags: multi-label), from ../shared/datasets/fashion-multitask.

Kept quick for `make run`: a subset of the pool images (600 by default) is imported, without
labels, so the annotator starts from zero and watches every set being learnt.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from labeler.items.importing import Importer

from .label_sets import add_set, primary_set
from .models import Project, Role, SetKind
from .services import create_project, set_member

NAME = "Fashion multi-task demo"
SETS = ("type", "colour", "season", "usage")  # gender left out: the keys would run out
TAGS = ("logo or print", "striped or checked", "worn by a model")
DEFAULT_LIMIT = 600


def multitask_dataset() -> Path:
    default = settings.BASE_DIR.parent / "shared" / "datasets" / "fashion-multitask"
    return Path(os.environ.get("LABELER_DEMO_MULTITASK_DATA", default))


def create_multitask_demo(lead: AbstractBaseUser, limit: int | None = None) -> str:
    """Create (once) the multi-set demo project; returns a line for the console."""
    folder = multitask_dataset()
    if not (folder / "labels.csv").is_file():
        return f"{folder} not found: no multi-task demo project."
    project = Project.objects.filter(name=NAME).first()
    if project is not None and project.items.exists():
        return f"Demo project {NAME!r} already has {project.items.count()} images."
    with (folder / "labels.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "train"]
    rows = rows[: limit or DEFAULT_LIMIT]
    if project is None:
        classes = {s: sorted({r[s] for r in rows}) for s in SETS}
        project = create_project(
            NAME, classes[SETS[0]], lead=lead,
            description="Product photos, four questions and free tags per image: every set "
                        "learnt from one shared embedding.",
        )
        first = primary_set(project)
        first.name = SETS[0]
        first.save(update_fields=["name"])
        for name in SETS[1:]:
            add_set(project, name, SetKind.SINGLE, classes[name])
        add_set(project, "tags", SetKind.MULTI, TAGS)
    set_member(project, lead, Role.LEAD)
    importer = Importer(project, user=lead)
    for row in rows:
        path = folder / "images" / row["file"]
        if path.is_file():
            importer.add(row["file"], path.read_bytes())
    report = importer.finish()
    return f"Demo project {NAME!r} ({len(SETS) + 1} label sets): {report.summary()}."
