"""Checks a visit's answers against the project's label sets before they are saved.

Two indexed queries (the item, the project's sets and the named classes), whatever the number
of sets: this runs on every submit of every annotator.
"""

from __future__ import annotations

from django.db import connection

from labeler.items.models import Item
from labeler.projects.models import LabelClass, LabelSet, Project, SetKind

from .services import AnnotationError, Answer


def resolve_answers(
    project: Project, item_id: int, raw: list[tuple[int, int | None, tuple[int, ...] | None]]
) -> tuple[Item, list[Answer]] | None:
    """The item and the checked answers; None if the item is not the project's (answer 404).

    AnnotationError (a 400) when a set is unknown or removed, a class is not in its set, a
    single-choice set gets tags or a multi-label set a single class.
    """
    class_ids = {c for _, label, tags in raw for c in ((label,) if label else tags or ())}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, leased_by_id, lease_is_audit FROM {Item._meta.db_table}"
            " WHERE id = %s AND project_id = %s",
            [item_id, project.pk],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        params: list = [project.pk]
        # Sets and classes in one round trip; each column keeps one type (PostgreSQL's UNION).
        sql = (f"SELECT 's', id, kind, CAST(NULL AS BIGINT) FROM {LabelSet._meta.db_table}"
               " WHERE project_id = %s AND removed_at IS NULL")
        if class_ids:
            marks = ", ".join(["%s"] * len(class_ids))
            sql += (f" UNION ALL SELECT 'c', id, CAST(NULL AS VARCHAR(8)), label_set_id"
                    f" FROM {LabelClass._meta.db_table} WHERE project_id = %s AND id IN ({marks})")
            params += [project.pk, *class_ids]
        cursor.execute(sql, params)
        found = cursor.fetchall()
    kinds = {pk: kind for tag, pk, kind, _ in found if tag == "s"}
    set_of = {pk: int(set_id) for tag, pk, _, set_id in found if tag == "c"}
    answers = []
    for set_id, label, tags in raw:
        if set_id not in kinds:
            raise AnnotationError(f"Unknown label set {set_id} for this project.")
        multi = kinds[set_id] == SetKind.MULTI
        if multi != (tags is not None):
            raise AnnotationError(
                f"Label set {set_id} takes {'tags' if multi else 'one label'}."
            )
        for c in (label,) if label else tags:
            if set_of.get(c) != set_id:
                raise AnnotationError(f"Class {c} is not in label set {set_id}.")
        answers.append(Answer(set_id, label, tags))
    item = Item.from_db(
        connection.alias, ["id", "project_id", "leased_by_id", "lease_is_audit"],
        [row[0], project.pk, row[1], bool(row[2])],
    )
    item.project = project
    return item, answers
