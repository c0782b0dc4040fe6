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
