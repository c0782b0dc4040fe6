"""State changes of projects, one function each."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .models import CLASS_COLORS, HOTKEY_ORDER, LabelClass, Membership, Project, Role


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
    for i, class_name in enumerate(names):
        add_class(project, class_name, order=i)
    if lead is not None:
        set_member(project, lead, Role.LEAD)
    return project


def add_class(project: Project, name: str, *, order: int | None = None) -> LabelClass:
    existing = list(project.classes.all())
    if order is None:
        order = len(existing)
    used = {c.hotkey for c in existing}
    hotkey = next((k for k in HOTKEY_ORDER if k not in used), "")
    color = CLASS_COLORS[len(existing) % len(CLASS_COLORS)]
    return LabelClass.objects.create(
        project=project, name=name, order=order, hotkey=hotkey, color=color
    )


def set_member(project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; choose one of {Role.values}.")
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


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
    project.save(update_fields=list(fields))
    return project


def change_backbone(project: Project, name: str, weights_path: str = "") -> bool:
    """Switch to another backbone: it is embedded in the background while the current one keeps
    serving, then swapped in (see worker.tasks.embed_project). Returns True if a switch started.

    The weights are checked now, so a missing file is reported to the lead at once.
    """
    from labeler.training.services import request_embedding
    from worker.ml.backbone_specs import get_spec, resolve_weights

    spec = get_spec(name)  # UnknownBackboneError lists the valid names
    resolve_weights(spec, weights_path or None)  # WeightsNotFoundError says how to get them
    if name == project.backbone:
        Project.objects.filter(pk=project.pk).update(
            backbone_weights=weights_path, pending_backbone="", pending_weights=""
        )
        return False
    Project.objects.filter(pk=project.pk).update(pending_backbone=name, pending_weights=weights_path)
    project.refresh_from_db()
    request_embedding(project, force=True)
    return True


def rename_class(label: LabelClass, name: str) -> LabelClass:
    name = name.strip()
    if not name:
        raise ValueError("A class needs a name.")
    if LabelClass.objects.filter(project=label.project_id, name=name).exclude(pk=label.pk).exists():
        raise ValueError(f"There is already a class named {name!r}.")
    label.name = name
    label.save(update_fields=["name"])
    return label


def set_hotkey(label: LabelClass, key: str) -> LabelClass:
    key = (key or "").strip().lower()
    if len(key) > 1 or (key and not key.isalnum()):
        raise ValueError("A hotkey is one letter or digit.")
    if key in RESERVED_KEYS:
        raise ValueError(f"{key!r} is a labeling command (s skip, z undo, ? help).")
    if key and LabelClass.objects.filter(project=label.project_id, hotkey=key).exclude(
        pk=label.pk
    ).exists():
        raise ValueError(f"Hotkey {key!r} is already used by another class.")
    label.hotkey = key
    label.save(update_fields=["hotkey"])
    return label


@transaction.atomic
def reorder_classes(project: Project, ordered_ids: Sequence[int]) -> None:
    classes = {c.pk: c for c in project.classes.all()}
    if sorted(ordered_ids) != sorted(classes):
        raise ValueError("The new order must list every class of the project once.")
    for position, pk in enumerate(ordered_ids):
        LabelClass.objects.filter(pk=pk).update(order=position)


@transaction.atomic
def move_class(label: LabelClass, direction: str) -> None:
    """Swap a class with its neighbour above ("up") or below ("down"); renumbers the order."""
    if direction not in ("up", "down"):
        raise ValueError("Move a class up or down.")
    ordered = list(LabelClass.objects.filter(project_id=label.project_id)
                   .order_by("order", "pk").values_list("pk", flat=True))
    i = ordered.index(label.pk)
    j = i - 1 if direction == "up" else i + 1
    if not 0 <= j < len(ordered):
        raise ValueError(f"{label.name} is already {'first' if direction == 'up' else 'last'}.")
    ordered[i], ordered[j] = ordered[j], ordered[i]
    reorder_classes(label.project, ordered)


@transaction.atomic
def merge_classes(source: LabelClass, target: LabelClass) -> int:
    """Fold `source` into `target`: its labels and predictions move over, then it is deleted.
    Returns how many labels moved. A retrain follows, since the classes changed."""
    from labeler.annotations.models import Annotation
    from labeler.items.models import Item
    from labeler.training.services import request_retrain

    if source.project_id != target.project_id or source.pk == target.pk:
        raise ValueError("Merge two different classes of the same project.")
    moved = Annotation.objects.filter(label=source).update(label=target)
    Item.objects.filter(predicted_class=source).update(predicted_class=target)
    project = source.project
    source.delete()
    transaction.on_commit(lambda: request_retrain(project))
    return moved


def remove_member(project: Project, user: AbstractBaseUser) -> None:
    Membership.objects.filter(project=project, user=user).delete()
