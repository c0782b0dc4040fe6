"""State changes of label sets, one function each: a project asks one or more questions per image.

Removing a set only hides it (from labeling, learning and the views); its annotations stay and
are exported until a lead confirms the deletion, which then drops them for good.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import LabelSet, Project, SetKind
from .ordering import swap_neighbour


def active_sets(project: Project | int) -> list[LabelSet]:
    """The sets annotators answer, in order (removed ones left out)."""
    project_id = project if isinstance(project, int) else project.pk
    return list(LabelSet.objects.filter(project_id=project_id, removed_at__isnull=True))


def primary_set(project: Project | int) -> LabelSet | None:
    """The set the items' own prediction and current-label columns follow (the item table, the
    single-set views): the first single-choice set, else the first set."""
    sets = active_sets(project)
    return next((s for s in sets if not s.multi), sets[0] if sets else None)


def _validated(label_set: LabelSet) -> LabelSet:
    try:
        label_set.full_clean(exclude=["project"], validate_unique=False,
                             validate_constraints=False)
    except ValidationError as exc:
        raise ValueError("Label set: " + " ".join(
            m for msgs in exc.message_dict.values() for m in msgs
        )) from exc
    return label_set


def _name_taken(project_id: int, name: str, exclude: int | None = None) -> bool:
    return LabelSet.objects.filter(project_id=project_id, name=name).exclude(pk=exclude).exists()


def add_set(project: Project, name: str, kind: str = SetKind.SINGLE,
            class_names: Sequence[str] = ()) -> LabelSet:
    """A new question for every image, last in order, with its classes (hotkeys continue where
    the project's other sets stop, so that digits answer the first set and letters the next)."""
    from .services import add_class

    name = (name or "").strip()
    if not name:
        raise ValueError("A label set needs a name.")
    if kind not in SetKind.values:
        raise ValueError(f"A label set is {' or '.join(SetKind.values)}.")
    if _name_taken(project.pk, name):
        raise ValueError(f"There is already a label set named {name!r}.")
    order = max((s.order for s in LabelSet.objects.filter(project=project)), default=-1) + 1
    label_set = _validated(LabelSet(project=project, name=name, kind=kind, order=order))
    try:
        with transaction.atomic():
            label_set.save(force_insert=True)
            for class_name in dict.fromkeys(n.strip() for n in class_names if n.strip()):
                add_class(project, class_name, label_set=label_set)
    except IntegrityError as exc:  # added concurrently
        raise ValueError(f"There is already a label set named {name!r}.") from exc
    return label_set


def rename_set(label_set: LabelSet, name: str) -> LabelSet:
    name = (name or "").strip()
    if not name:
        raise ValueError("A label set needs a name.")
    if _name_taken(label_set.project_id, name, exclude=label_set.pk):
        raise ValueError(f"There is already a label set named {name!r}.")
    label_set.name = name
    _validated(label_set).save(update_fields=["name"])
    return label_set


@transaction.atomic
def move_set(label_set: LabelSet, direction: str) -> None:
    """Swap a set with its neighbour above or below (the labeling page's order)."""
    ordered = swap_neighbour(list(LabelSet.objects.filter(project_id=label_set.project_id)
                                  .order_by("order", "pk").values_list("pk", flat=True)),
                             label_set.pk, direction, label_set.name, "label set")
    for position, pk in enumerate(ordered):
        LabelSet.objects.filter(pk=pk).update(order=position)
    _primary_may_change(label_set.project_id)


def remove_set(label_set: LabelSet) -> None:
    """Hide a set from labeling and learning; its annotations stay exportable."""
    others = LabelSet.objects.filter(project_id=label_set.project_id, removed_at__isnull=True)
    if not others.exclude(pk=label_set.pk).exists():
        raise ValueError("A project keeps at least one label set.")
    LabelSet.objects.filter(pk=label_set.pk).update(removed_at=timezone.now())
    _primary_may_change(label_set.project_id)


def restore_set(label_set: LabelSet) -> None:
    LabelSet.objects.filter(pk=label_set.pk).update(removed_at=None)
    _primary_may_change(label_set.project_id)


@transaction.atomic
def delete_set(label_set: LabelSet) -> int:
    """The lead confirmed: the removed set, its classes and annotations go. Returns how many
    annotations were deleted."""
    if label_set.removed_at is None:
        raise ValueError("Remove the label set first; deleting it then needs a confirmation.")
    deleted = label_set.annotations.count()
    label_set.delete()
    return deleted


def _primary_may_change(project_id: int) -> None:
    """The first set carries the items' label columns and the main head: recompute them."""
    from labeler.annotations.current import refresh_project
    from labeler.training.services import request_retrain

    refresh_project(project_id)
    transaction.on_commit(lambda: request_retrain(project_id))
