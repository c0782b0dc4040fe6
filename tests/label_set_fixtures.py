"""A project with two label sets (garment type, single choice; colour tags, multi-label)."""

from __future__ import annotations

import pytest

from labeler.projects.label_sets import add_set, primary_set
from labeler.projects.models import Role, SetKind
from labeler.projects.services import set_member


@pytest.fixture(name="two_sets")
def two_sets_fixture(db, make_user, project_factory, add_images):
    """A project asking garment type (single choice) and colour tags (multi-label)."""
    lead = make_user("lead")
    project = project_factory(classes=("shirt", "shoe"), lead=lead, audit_share=0.0)
    colours = add_set(project, "colour", SetKind.MULTI, ["red", "blue", "green"])
    items = add_images(project, 6)
    annotator = make_user("ann")
    set_member(project, annotator, Role.ANNOTATOR)
    return project, primary_set(project), colours, items, annotator
