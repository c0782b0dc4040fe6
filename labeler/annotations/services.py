"""State changes of annotations, one function each (Zulip style): every label goes through here."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from labeler.items.models import Item
from labeler.projects.models import LabelClass
from labeler.training.services import request_retrain_if_due

from .current import refresh_items
from .models import Annotation, Skip, Source
from .queue import release_clause, release_leases


class AnnotationError(ValueError):
    """A label that can't be saved; the message is for the user."""


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
    """Record `user`'s label for `item`. Returns (annotation, created).

    Idempotent: the same client_id returns the existing annotation; a second label by the same
    annotator on the same item edits their annotation (that is what undo + relabel does).
    Every annotator's key press lands here, so it is kept to a handful of statements.
    """
    if label.project_id != item.project_id:
        raise AnnotationError("That class belongs to another project.")
    if client_id is not None and not isinstance(client_id, uuid.UUID):
        try:
            client_id = uuid.UUID(str(client_id))
        except ValueError as exc:
            raise AnnotationError("client_id must be a UUID.") from exc
    seconds = max(0.0, min(float(seconds_spent or 0.0), 3600.0))
    try:
        with transaction.atomic():
            annotation = None
            if user is not None:
                found = list(
                    Annotation.objects.select_for_update()
                    .filter(item_id=item.pk, annotator_id=user.pk).order_by()[:1]
                )
                annotation = found[0] if found else None
            if annotation is not None and client_id is not None and annotation.client_id == client_id:
                return annotation, False  # a retried save
            created = annotation is None
            if created:
                is_audit = bool(
                    user is not None and item.lease_is_audit and item.leased_by_id == user.pk
                )
                annotation = Annotation.objects.create(
                    item=item, label=label, annotator=user, seconds_spent=seconds,
                    source=source, is_audit=is_audit, client_id=client_id,
                )
            else:
                annotation.label = label
                annotation.seconds_spent += seconds
                annotation.source = source
                if client_id is not None:
                    annotation.client_id = client_id
                annotation.save(update_fields=["label", "seconds_spent", "source", "client_id",
                                               "updated_at"])
            if user is not None:
                _count_and_release(item.pk, user.pk, 1 if created else 0)
            elif created:
                Item.objects.filter(pk=item.pk).update(annotation_count=F("annotation_count") + 1)
            refresh_items(item.project_id, [item.pk])
    except IntegrityError:
        # The client_id is taken: a concurrent retry won the race, or the client reused an id.
        existing = (
            Annotation.objects.filter(client_id=client_id).first() if client_id is not None
            else None
        )
        if existing is None:
            if user is not None and Annotation.objects.filter(
                item_id=item.pk, annotator_id=user.pk
            ).exists():
                # The same annotator's concurrent save (a second tab) labeled this item first:
                # this one edits that label, as a relabel does (PostgreSQL; SQLite serialises).
                return save_annotation(
                    item, label, user, seconds_spent=seconds_spent, client_id=client_id,
                    source=source, trigger_retrain=trigger_retrain,
                )
            raise
        if existing.item_id != item.pk:
            raise AnnotationError("client_id already used for another item.") from None
        return existing, False
    if trigger_retrain and created:
        project_id = item.project_id
        transaction.on_commit(lambda: request_retrain_if_due(project_id))
    return annotation, created


def _count_and_release(item_id: int, user_id: int, added: int) -> None:
    """Count the new label, end `user`'s lease on the item and drop their skip of it, if any."""
    table = Item._meta.db_table
    release, params = release_clause(user_id)
    with connection.cursor() as cursor:
        # One statement: the count and the release (the annotator's hot path).
        cursor.execute(
            f"UPDATE {table} SET annotation_count = annotation_count + %s, {release}"
            " WHERE id = %s",
            [added, *params, item_id],
        )
        # A label replaces an earlier skip (undo of a skip, then a label).
        cursor.execute(
            f"DELETE FROM {Skip._meta.db_table} WHERE item_id = %s AND annotator_id = %s",
            [item_id, user_id],
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
    for item in items:
        _, was_created = save_annotation(item, label, user, source=Source.GRID)
        created += was_created
    if rejected:
        release_leases(label.project_id, user, [i.pk for i in rejected])
    return created
