"""A project whose users were hostile: class names that are HTML or spreadsheet formulas, file
names that are formulas or markup, a second (multi-label) label set whose name and tags are
both, and a JPEG with HTML appended uploaded as ``evil.html``.
It has embeddings, a model made by the product's own retrain code (so a confusion matrix,
predictions and label errors) and an embedding map, so that every page and export has the
hostile strings to render. Shared by the XSS and CSV-injection tests."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.annotations.services import Answer, save_annotation, save_answers
from labeler.items.importing import Importer
from labeler.projects.label_sets import add_set
from labeler.projects.models import Role, SetKind
from labeler.projects.services import set_member

from ..conftest import jpeg_bytes

XSS_CLASSES = [
    '<img src=x onerror="window.__xss=1;alert(1)">',
    "<script>window.__xss=1;alert(1)</script>",
]
FORMULA_CLASSES = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://127.0.0.1/?leak="&A1,"open")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
]
HOSTILE_CLASSES = XSS_CLASSES + FORMULA_CLASSES
HTML_PAYLOAD = b"<html><body><script>window.__xss=1;alert(1)</script></body></html>"
FILE_NAMES = [
    "evil.html", "evil.svg", "=HYPERLINK(\"http://127.0.0.1/\").jpg", "\t=1+1.jpg", "\r=1+1.jpg",
    "-2+3+cmd.jpg", "@SUM(1).jpg", "<img src=x onerror=window.__xss=1>.jpg",
]
PER_CLASS = 5  # 4 labeled, 1 not
# A second label set (multi-label) named and tagged by the same attacker.
SET_NAME = '=HYPERLINK("http://127.0.0.1/")<img src=x onerror="window.__xss=1">'
SET_TAGS = [XSS_CLASSES[1], FORMULA_CLASSES[0], '"><svg onload=window.__xss=1>']


def evil_jpeg(colour: tuple[int, int, int]) -> bytes:
    """A real, whole JPEG followed by an HTML document with a script."""
    return jpeg_bytes(colour, (70, 50)) + HTML_PAYLOAD


@pytest.fixture
def hostile(db, make_user, project_factory):
    from labeler.training.retrain import retrain_now
    from labeler.training.stores import store_for

    lead = make_user("lead")
    annotator = make_user("ann")
    admin = make_user("root", staff=True)
    project = project_factory("<b>Hostile</b> =1+1", classes=HOSTILE_CLASSES, lead=lead)
    set_member(project, annotator, Role.ANNOTATOR)
    classes = list(project.classes.all())
    importer = Importer(project, user=lead)
    rng = np.random.default_rng(1)
    items = []
    for i in range(PER_CLASS * len(classes)):
        colour = (17 * i % 256, 53 * i % 256, 101 * i % 256)
        name = FILE_NAMES[i] if i < len(FILE_NAMES) else f"photo {i}.jpg"
        data = evil_jpeg(colour) if name.startswith("evil") else jpeg_bytes(colour, (64 + i, 48))
        items.append(importer.add(name, data))
    assert all(items), importer.report.errors
    for i, item in enumerate(items):
        cls = i % len(classes)
        if i // len(classes) < PER_CLASS - 1:
            # One item per class gets the next class's label: the model flags it as an error.
            given = classes[(cls + 1) % len(classes)] if i < len(classes) else classes[cls]
            save_annotation(item, given, lead if i % 2 else annotator, trigger_retrain=False)
    tags = add_set(project, SET_NAME, SetKind.MULTI, SET_TAGS)
    tag_ids = list(tags.classes.values_list("pk", flat=True))
    for i, item in enumerate(items[: 3 * len(classes)]):
        save_answers(item, [Answer(tags.pk, tags=(tag_ids[i % 3],) if i % 4 else ())],
                     lead if i % 2 else annotator, trigger_retrain=False)
    centers = rng.normal(size=(len(classes), 32)).astype(np.float32) * 4
    X = np.stack([centers[i % len(classes)] + rng.normal(size=32) for i in range(len(items))])
    store_for(project.pk, project.backbone).append(
        np.array([it.pk for it in items]), X.astype(np.float32)
    )
    assert retrain_now(project) is not None
    return {"project": project, "lead": lead, "annotator": annotator, "admin": admin,
            "items": items, "classes": classes, "X": X, "tag_set": tags}
