"""One annotator saving labels for the same item from two tabs at the same instant: on
PostgreSQL both transactions may insert, and the loser hit the unique (item, annotator)
constraint as a 500. Now it edits the winner's label: one label per annotator, no error."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from labeler.annotations.models import Annotation
from labeler.annotations.services import save_annotation
from labeler.items.models import Item


def test_concurrent_saves_by_one_annotator_keep_one_label(
    project_factory, add_images, make_user, transactional_db
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers (IMMEDIATE transactions): no race to test")
    project = project_factory("Race", classes=("a", "b"))
    user = make_user("twotabs")
    items = add_images(project, 15)
    a, b = project.classes.all()[:2]
    errors: list[BaseException] = []

    def tab(label, barrier) -> None:
        try:
            for item in items:
                barrier.wait(10)
                save_annotation(Item.objects.get(pk=item.pk), label, user, trigger_retrain=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    barrier = threading.Barrier(2)
    tabs = [threading.Thread(target=tab, args=(label, barrier)) for label in (a, b)]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join(60)
    assert not errors, errors
    assert Annotation.objects.filter(item__project=project).count() == len(items)
    assert set(Item.objects.filter(project=project).values_list("annotation_count", flat=True)) \
        == {1}
