"""State changes of annotations, one function each (Zulip style): every label goes through here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction

from labeler.items.models import Item
from labeler.projects.models import LabelClass, LabelSet, SetKind
from labeler.training.services import request_retrain_if_due

from .current import current_columns
from .models import Annotation, Skip, Source
from .queue import release_clause, release_leases


class AnnotationError(ValueError):
    """A label that can't be saved; the message is for the user."""


@dataclass(frozen=True)
class Answer:
    """One label set's answer: a class (single-choice) or tags, possibly none (multi-label)."""

    set_id: int
    label_id: int | None = None
    tags: tuple[int, ...] | None = None


def save_annotation(
    item: Item,
    label: LabelClass,
    user: AbstractBaseUser | None,
    *,
    seconds_spent: float = 0.0,
    client_id: uuid.UUID | str | None = None,
    source: str = Source.MANUAL,
    trigger_retrain: bool = True,
) -> tuple[Annotation, bool]:
    """Record `user`'s class for `item` in the class's label set. Returns (annotation, created)."""
    if label.project_id != item.project_id:
        raise AnnotationError("That class belongs to another project.")
    rows, created = save_answers(
        item, [Answer(label.label_set_id, label.pk)], user, seconds_spent=seconds_spent,
        client_id=client_id, source=source, trigger_retrain=trigger_retrain,
    )
    return rows[0], created


def _as_uuid(client_id: uuid.UUID | str | None) -> uuid.UUID | None:
    if client_id is None or isinstance(client_id, uuid.UUID):
        return client_id
    try:
        return uuid.UUID(str(client_id))
    except ValueError as exc:
        raise AnnotationError("client_id must be a UUID.") from exc


def save_answers(
    item: Item,
    answers: list[Answer],
    user: AbstractBaseUser | None,
    *,
    seconds_spent: float = 0.0,
    client_id: uuid.UUID | str | None = None,
    source: str = Source.MANUAL,
    trigger_retrain: bool = True,
) -> tuple[list[Annotation], bool]:
    """Record `user`'s answers for `item`, one annotation per label set. Returns (annotations,
    created), created when this is the user's first label of the item.

    The caller has checked that every class belongs to its set and the set to the item's
    project. Idempotent: the same client_id returns the existing annotations; answering again
    (undo + relabel) edits them. Every annotator's key press lands here, so it is a handful of
    statements: one per answered set, plus two for a multi-label set's tags.
    """
    if not answers:
        raise AnnotationError("Answer at least one label set.")
    client_id = _as_uuid(client_id)
    seconds = max(0.0, min(float(seconds_spent or 0.0), 3600.0))
    try:
        with transaction.atomic():
            existing: dict[int, Annotation] = {}
            if user is not None:
                existing = {
                    a.label_set_id: a for a in Annotation.objects.select_for_update()
                    .filter(item_id=item.pk, annotator_id=user.pk).order_by()
                }
            if client_id is not None and any(a.client_id == client_id for a in existing.values()):
                return [existing[a.set_id] for a in answers if a.set_id in existing], False
            created = not existing
            if existing:
                is_audit = any(a.is_audit for a in existing.values())
            else:
                is_audit = bool(
                    user is not None and item.lease_is_audit and item.leased_by_id == user.pk
                )
            rows, retagged = [], []
            for position, answer in enumerate(answers):
                spent = seconds if position == 0 else 0.0  # the visit's time, counted once
                annotation = existing.get(answer.set_id)
                if annotation is None:
                    annotation = Annotation.objects.create(
                        item=item, label_set_id=answer.set_id, label_id=answer.label_id,
                        annotator=user, seconds_spent=spent, source=source, is_audit=is_audit,
                        client_id=client_id,
                    )
                else:
                    annotation.label_id = answer.label_id
                    annotation.seconds_spent += spent
                    annotation.source = source
                    if client_id is not None:
                        annotation.client_id = client_id
                    annotation.save(update_fields=["label", "seconds_spent", "source",
                                                   "client_id", "updated_at"])
                    retagged.append(annotation.pk)
                rows.append(annotation)
            _store_tags(rows, answers, retagged)
            _update_item(item, user.pk if user is not None else None, 1 if created else 0)
    except IntegrityError:
        # The client_id is taken: a concurrent retry won the race, or the client reused an id.
        found = list(Annotation.objects.filter(client_id=client_id)) if client_id else []
        if not found:
            if user is not None and Annotation.objects.filter(
                item_id=item.pk, annotator_id=user.pk
            ).exists():
                # The same annotator's concurrent save (a second tab) labeled this item first:
                # this one edits that label, as a relabel does (PostgreSQL; SQLite serialises).
                return save_answers(
                    item, answers, user, seconds_spent=seconds_spent, client_id=client_id,
                    source=source, trigger_retrain=trigger_retrain,
                )
            raise
        if found[0].item_id != item.pk:
            raise AnnotationError("client_id already used for another item.") from None
        by_set = {a.label_set_id: a for a in found}
        return [by_set[a.set_id] for a in answers if a.set_id in by_set] or found, False
    if trigger_retrain and created:
        project_id = item.project_id
        transaction.on_commit(lambda: request_retrain_if_due(project_id))
    return rows, created


def _store_tags(rows: list[Annotation], answers: list[Answer], retagged: list[int]) -> None:
    """The tags of the multi-label answers (two statements, whatever the number of tags)."""
    through = Annotation.tags.through
    multi = [(row, answer) for row, answer in zip(rows, answers, strict=True) if answer.tags is not None]
    if not multi:
        return
    replaced = [row.pk for row, _ in multi if row.pk in retagged]
    if replaced:
        through.objects.filter(annotation_id__in=replaced).delete()
    links = [
        through(annotation_id=row.pk, labelclass_id=tag)
        for row, answer in multi for tag in dict.fromkeys(answer.tags)
    ]
    if links:
        through.objects.bulk_create(links)


def _update_item(item: Item, user_id: int | None, added: int) -> None:
    """Count the new label, set the item's current-label columns, end `user_id`'s lease on the
    item and drop their skip of it, if any: the annotator's hot path, so one UPDATE (each
    write of an item row updates its every index) and, for a person, one DELETE."""
    label_id, audit = current_columns(item.project_id, [item.pk])[item.pk]
    table = Item._meta.db_table
    release, params = release_clause(user_id) if user_id is not None else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET annotation_count = annotation_count + %s,"
            f" current_label_id = %s, has_audit_label = %s{', ' + release if release else ''}"
            " WHERE id = %s",
            [added, label_id, audit, *params, item.pk],
        )
        if user_id is not None:
            # A label replaces an earlier skip (undo of a skip, then a label).
            cursor.execute(
                f"DELETE FROM {Skip._meta.db_table} WHERE item_id = %s AND annotator_id = %s",
                [item.pk, user_id],
            )


@transaction.atomic
def skip_item(item: Item, user: AbstractBaseUser, reason: str = "") -> Skip:
    """`user` passes on `item`: it is never served to them again and their lease ends."""
    skip, _ = Skip.objects.update_or_create(
        item=item, annotator=user, defaults={"reason": (reason or "")[:200]}
    )
    release_leases(item.project_id, user, [item.pk])
    return skip


@transaction.atomic
def confirm_grid(
    items: list[Item], label: LabelClass, user: AbstractBaseUser, *, rejected: list[Item] = ()
) -> int:
    """Grid mode: every confirmed item gets `label` (source=grid); rejected ones go back to the pool."""
    created = 0
    multi = LabelSet.objects.filter(pk=label.label_set_id, kind=SetKind.MULTI).exists()
    for item in items:
        if multi:  # the tag joins the annotator's other tags of that set
            tags = Annotation.tags.through.objects.filter(
                annotation__item=item, annotation__annotator=user,
                annotation__label_set_id=label.label_set_id,
            ).values_list("labelclass_id", flat=True)
            answer = Answer(label.label_set_id, tags=(*tags, label.pk))
            _, was_created = save_answers(item, [answer], user, source=Source.GRID)
        else:
            _, was_created = save_annotation(item, label, user, source=Source.GRID)
        created += was_created
    if rejected:
        release_leases(label.project_id, user, [i.pk for i in rejected])
    return created
