"""State changes of annotations, one function each (Zulip style): every label goes through here."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F

from labeler.items.models import Item
from labeler.projects.models import LabelClass

from .models import Annotation, Skip, Source


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
    """
    if label.project_id != item.project_id:
        raise AnnotationError("That class belongs to another project.")
    if client_id is not None and not isinstance(client_id, uuid.UUID):
        try:
            client_id = uuid.UUID(str(client_id))
        except ValueError as exc:
            raise AnnotationError("client_id must be a UUID.") from exc
    if client_id is not None:
        existing = Annotation.objects.filter(client_id=client_id).first()
        if existing is not None:
            if existing.item_id != item.pk:
                raise AnnotationError("client_id already used for another item.")
            return existing, False
    seconds = max(0.0, min(float(seconds_spent or 0.0), 3600.0))
    try:
        with transaction.atomic():
            is_audit = bool(
                user is not None and item.lease_is_audit and item.leased_by_id == user.pk
            )
            annotation = None
            if user is not None:
                annotation = (
                    Annotation.objects.select_for_update()
                    .filter(item=item, annotator=user)
                    .first()
                )
            created = annotation is None
            if created:
                annotation = Annotation.objects.create(
                    item=item, label=label, annotator=user, seconds_spent=seconds,
                    source=source, is_audit=is_audit, client_id=client_id,
                )
                Item.objects.filter(pk=item.pk).update(annotation_count=F("annotation_count") + 1)
            else:
                annotation.label = label
                annotation.seconds_spent += seconds
                annotation.source = source
                if client_id is not None:
                    annotation.client_id = client_id
                annotation.save()
            if user is not None:
                # A label replaces an earlier skip (undo of a skip, then a label).
                Skip.objects.filter(item=item, annotator=user).delete()
                # The label ends this annotator's lease on the item.
                Item.objects.filter(pk=item.pk, leased_by=user).update(
                    leased_by=None, lease_expires_at=None, lease_is_audit=False
                )
    except IntegrityError:
        # A concurrent retry with the same client_id won the race: return its row.
        if client_id is None:
            raise
        return Annotation.objects.get(client_id=client_id), False
    if trigger_retrain and created:
        from labeler.training.services import request_retrain_if_due

        project = item.project
        transaction.on_commit(lambda: request_retrain_if_due(project))
    return annotation, created


@transaction.atomic
def delete_annotation(annotation: Annotation) -> None:
    """Remove a label (undo): the item goes back to the pool."""
    Item.objects.filter(pk=annotation.item_id, annotation_count__gt=0).update(
        annotation_count=F("annotation_count") - 1
    )
    annotation.delete()


@transaction.atomic
def skip_item(item: Item, user: AbstractBaseUser, reason: str = "") -> Skip:
    """`user` passes on `item`: it is never served to them again and their lease ends."""
    skip, _ = Skip.objects.update_or_create(
        item=item, annotator=user, defaults={"reason": (reason or "")[:200]}
    )
    Item.objects.filter(pk=item.pk, leased_by=user).update(
        leased_by=None, lease_expires_at=None, lease_is_audit=False
    )
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
    ids = [i.pk for i in rejected]
    if ids:
        Item.objects.filter(pk__in=ids, leased_by=user).update(
            leased_by=None, lease_expires_at=None, lease_is_audit=False
        )
    return created
