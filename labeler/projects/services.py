"""State changes of projects, one function each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeler.training.services import cancel_switch, request_retrain, request_switch

from .models import (
    CLASS_COLORS,
    HOTKEY_ORDER,
    LabelClass,
    LabelSet,
    Membership,
    Project,
    Role,
    SetKind,
)
from .ordering import swap_neighbour


@transaction.atomic
def create_project(
    name: str,
    class_names: Sequence[str],
    *,
    lead: AbstractBaseUser | None = None,
    **fields,
) -> Project:
    """Create a project with its classes (hotkeys 1-9, 0, letters) and make `lead` its lead."""
    names = [n.strip() for n in class_names if n.strip()]
    if len(set(names)) != len(names):
        raise ValueError("Class names must be unique.")
    if len(names) > len(HOTKEY_ORDER):
        raise ValueError(f"At most {len(HOTKEY_ORDER)} classes have hotkeys.")
    project = Project.objects.create(name=name, created_by=lead, **fields)
    label_set = LabelSet.objects.create(project=project, name="Class", kind=SetKind.SINGLE)
    for i, class_name in enumerate(names):
        add_class(project, class_name, order=i, label_set=label_set)
    if lead is not None:
        set_member(project, lead, Role.LEAD)
    return project


def _validated(label: LabelClass) -> LabelClass:
    """The class if the model's own rules hold (name length from max_length, which SQLite does
    not enforce; one name per project); else ValueError with a message for the user."""
    try:
        label.full_clean()
    except ValidationError as exc:
        fields = exc.message_dict
        text = " ".join(m for msgs in fields.values() for m in msgs)
        raise ValueError(f"Class name: {text}" if "name" in fields else text) from exc
    return label


def add_class(
    project: Project, name: str, *, order: int | None = None, label_set: LabelSet | None = None
) -> LabelClass:
    """A class (a tag, in a multi-label set) of `label_set` (default: the first set). Its hotkey
    is the first one no class of the project uses yet (digits first in the first set, letters
    first in the others), so that a key answers one set without ambiguity."""
    from .label_sets import primary_set

    label_set = label_set or primary_set(project)
    if label_set is None or label_set.project_id != project.pk:
        raise ValueError("Add a label set first.")
    in_project = list(project.classes.all())
    existing = [c for c in in_project if c.label_set_id == label_set.pk]
    if any(c.name == name for c in existing):
        raise ValueError(f"There is already a class named {name!r}.")
    if order is None:
        order = len(existing)
    used = {c.hotkey for c in in_project}
    # Digits answer the first set, letters the next ones (then whatever is left).
    later = LabelSet.objects.filter(project=project, order__lt=label_set.order).exists()
    keys = HOTKEY_ORDER[10:] + HOTKEY_ORDER[:10] if later else HOTKEY_ORDER
    in_set = {c.hotkey for c in existing}
    # Every key taken: one the set has not (the set in focus wins a shared key).
    hotkey = next((k for k in keys if k not in used), "") or next(
        (k for k in keys if k not in in_set), "")
    color = CLASS_COLORS[len(existing) % len(CLASS_COLORS)]
    label = LabelClass(project=project, label_set=label_set, name=name, order=order,
                       hotkey=hotkey, color=color)
    _validated(label)
    try:
        with transaction.atomic():
            label.save(force_insert=True)
    except IntegrityError as exc:  # added concurrently by someone else
        raise ValueError(f"There is already a class named {name!r}.") from exc
    return label


def set_member(project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; choose one of {Role.values}.")
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    _leads_changed(project)
    return membership


def _leads_changed(project: Project) -> None:
    """A lead's label is authoritative: who leads changes the items' current labels."""
    from labeler.annotations.current import refresh_project

    refresh_project(project.pk)


RESERVED_KEYS = {"s", "z", "?"}  # labeling commands: skip, undo, help


def update_settings(project: Project, **fields) -> Project:
    """Change a project's learning and labeling settings (validated: bad values never stored)."""
    from worker.ml.strategy_names import STRATEGY_NAMES

    allowed = {"name", "description", "query_strategy", "retrain_every", "audit_share",
               "overlap", "lease_seconds"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    if "query_strategy" in fields and fields["query_strategy"] not in STRATEGY_NAMES:
        raise ValueError(f"Unknown strategy; choose one of {', '.join(STRATEGY_NAMES)}.")
    if "audit_share" in fields and not 0.0 <= float(fields["audit_share"]) <= 0.5:
        raise ValueError("The audit share must be between 0 and 0.5.")
    for key in ("retrain_every", "overlap", "lease_seconds"):
        if key in fields and int(fields[key]) < 1:
            raise ValueError(f"{key.replace('_', ' ')} must be at least 1.")
    if "retrain_every" in fields and int(fields["retrain_every"]) > 10_000:
        raise ValueError("Retrain every: at most 10,000 labels.")
    for key, value in fields.items():
        setattr(project, key, value)
    try:  # the model's own limits too (max_length, which SQLite does not enforce)
        project.clean_fields(exclude=[f.name for f in Project._meta.fields if f.name not in fields])
    except ValidationError as exc:
        raise ValueError(" ".join(
            f"{key.replace('_', ' ').capitalize()}: {' '.join(msgs)}"
            for key, msgs in exc.message_dict.items()
        )) from exc
    if "name" in fields and Project.objects.filter(name=fields["name"]).exclude(
        pk=project.pk
    ).exists():
        raise ValueError("Name: there is already a project with this name.")
    try:
        with transaction.atomic():
            project.save(update_fields=list(fields))
    except IntegrityError as exc:  # renamed concurrently to the same name
        raise ValueError("Name: there is already a project with this name.") from exc
    return project


def change_backbone(project: Project, name: str, weights_path: str = "") -> bool:
    """Switch to another backbone: it is embedded in the background while the current one keeps
    serving, then swapped in (a switch_backbone job: labeler.training.embedding). Returns True if
    a switch started.

    The weights are checked now, so a missing file is reported to the lead at once. A custom
    weights file must lie in the weights folder (settings.LABELER_WEIGHTS_DIR): a lead may not
    point the worker at any other file on the server.
    """
    from worker.ml.backbone_specs import get_spec, resolve_weights

    spec = get_spec(name)  # UnknownBackboneError lists the valid names
    if weights_path:
        weights_path = str(weights_in_folder(weights_path))
    resolve_weights(spec, weights_path or None)  # WeightsNotFoundError says how to get them
    if name == project.backbone:
        Project.objects.filter(pk=project.pk).update(backbone_weights=weights_path)
        cancel_switch(project)
        return False
    request_switch(project, name, weights_path)
    return True


# How a torch checkpoint starts: torch.save's zip format, or the legacy pickle's magic number.
CHECKPOINT_HEADS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a")


def weights_in_folder(given: str) -> Path:
    """The checkpoint `given` names (relative to it, or absolute) inside the weights folder.

    Outside the folder, missing, not a file or not a checkpoint all get the same message, so a
    lead learns nothing about the server's other files.
    """
    if not settings.LABELER_WEIGHTS_DIR:
        raise ValueError(
            "Custom weights are off: the server's LABELER_WEIGHTS_DIR names no weights folder."
        )
    refused = ValueError(
        f"No usable weights file {given!r} in the weights folder (LABELER_WEIGHTS_DIR): "
        "copy the checkpoint there and give its file name."
    )
    root = Path(settings.LABELER_WEIGHTS_DIR).resolve()
    try:
        path = (root / given).resolve()  # symlinks followed: a link out of the folder is outside
        head = b""
        if path.is_relative_to(root) and path.is_file():
            with path.open("rb") as handle:
                head = handle.read(4)
    except (OSError, ValueError) as exc:  # unreadable; an embedded NUL
        raise refused from exc
    if head not in CHECKPOINT_HEADS:
        raise refused
    return path


def rename_class(label: LabelClass, name: str) -> LabelClass:
    name = name.strip()
    if not name:
        raise ValueError("A class needs a name.")
    if LabelClass.objects.filter(label_set=label.label_set_id, name=name).exclude(
        pk=label.pk
    ).exists():
        raise ValueError(f"There is already a class named {name!r}.")
    label.name = name
    _validated(label).save(update_fields=["name"])
    return label


def set_hotkey(label: LabelClass, key: str) -> LabelClass:
    key = (key or "").strip().lower()
    if len(key) > 1 or (key and not key.isalnum()):
        raise ValueError("A hotkey is one letter or digit.")
    if key in RESERVED_KEYS:
        raise ValueError(f"{key!r} is a labeling command (s skip, z undo, ? help).")
    # One key per class within a set; the same key in two sets answers the set in focus.
    if key and LabelClass.objects.filter(label_set=label.label_set_id, hotkey=key).exclude(
        pk=label.pk
    ).exists():
        raise ValueError(f"Hotkey {key!r} is already used by another class.")
    label.hotkey = key
    label.save(update_fields=["hotkey"])
    return label


@transaction.atomic
def reorder_classes(project: Project, ordered_ids: Sequence[int]) -> None:
    """New order of one set's classes (the set of the first id listed)."""
    first = project.classes.filter(pk__in=list(ordered_ids)[:1]).first()
    classes = {c.pk: c for c in project.classes.filter(label_set=first.label_set_id)} if first \
        else {}
    if not classes or sorted(ordered_ids) != sorted(classes):
        raise ValueError("The new order must list every class of the set once.")
    for position, pk in enumerate(ordered_ids):
        LabelClass.objects.filter(pk=pk).update(order=position)


@transaction.atomic
def move_class(label: LabelClass, direction: str) -> None:
    """Swap a class with its neighbour above ("up") or below ("down"); renumbers the order."""
    ordered = swap_neighbour(list(LabelClass.objects.filter(label_set_id=label.label_set_id)
                                  .order_by("order", "pk").values_list("pk", flat=True)),
                             label.pk, direction, label.name, "class")
    reorder_classes(label.project, ordered)


@transaction.atomic
def merge_classes(source: LabelClass, target: LabelClass) -> int:
    """Fold `source` into `target`: its labels and predictions move over, then it is deleted.
    Returns how many labels moved. A retrain follows, since the classes changed."""
    from labeler.annotations.models import Annotation
    from labeler.items.models import Item

    if source.label_set_id != target.label_set_id or source.pk == target.pk:
        raise ValueError("Merge two different classes of the same label set.")
    from labeler.annotations.current import refresh_items

    touched = list(Annotation.objects.filter(label=source).values_list("item_id", flat=True))
    moved = Annotation.objects.filter(label=source).update(label=target)
    # Multi-label sets: the source tag becomes the target tag (once per annotation).
    through = Annotation.tags.through
    tagged = through.objects.filter(labelclass=source)
    both = through.objects.filter(labelclass=target).values("annotation_id")
    touched += list(tagged.values_list("annotation__item_id", flat=True))
    moved += tagged.count()
    tagged.filter(annotation_id__in=both).delete()
    tagged.update(labelclass=target)
    Item.objects.filter(predicted_class=source).update(predicted_class=target)
    Item.objects.filter(oof_predicted=source).update(oof_predicted=target)
    refresh_items(source.project_id, set(touched))  # majorities may change with merged votes
    project = source.project
    source.delete()
    transaction.on_commit(lambda: request_retrain(project))
    return moved


def remove_member(project: Project, user: AbstractBaseUser) -> None:
    """Take `user` off the project; the items they hold are released at once (a signal of the
    annotations app does that for every deleted membership, the admin's included)."""
    Membership.objects.filter(project=project, user=user).delete()
    _leads_changed(project)
