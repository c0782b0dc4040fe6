"""The lead's project settings page: classes, learning settings, backbone, members and roles."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from labeler.request_input import clean
from labeler.training.actions import active_job
from labeler.training.checks import check_context
from labeler.training.models import Job
from labeler.training.services import embedding_job

from . import forms, label_sets, services
from .access import get_project_for
from .models import LabelClass, LabelSet, Membership, Project, Role


def _class(project: Project, pk: int) -> LabelClass:
    label = project.classes.filter(pk=pk).first()
    if label is None:
        raise ValueError("Unknown class.")
    return label


def _set(project: Project, pk: int) -> LabelSet:
    label_set = project.label_sets.filter(pk=pk).first()
    if label_set is None:
        raise ValueError("Unknown label set.")
    return label_set


SET_ACTIONS = {"add_set", "edit_set", "move_set", "remove_set", "restore_set", "delete_set"}


def _apply_set(project: Project, action: str, post) -> str:
    """The label-set actions of the settings page (labeler.projects.label_sets)."""
    if action == "add_set":
        data = clean(forms.AddSetForm, post)
        names = (data["classes"] or "").replace(",", "\n").splitlines()
        created = label_sets.add_set(project, data["name"], data["kind"], names)
        return f"Label set {created.name} added."
    if action == "edit_set":
        data = clean(forms.EditSetForm, post)
        renamed = label_sets.rename_set(_set(project, data["label_set"]), data["name"])
        return f"Label set renamed to {renamed.name}."
    if action == "move_set":
        data = clean(forms.MoveSetForm, post)
        label_set = _set(project, data["label_set"])
        label_sets.move_set(label_set, data["direction"])
        return f"Moved {label_set.name} {data['direction']}."
    label_set = _set(project, clean(forms.SetForm, post)["label_set"])
    if action == "remove_set":
        label_sets.remove_set(label_set)
        return f"Label set {label_set.name} removed: its labels stay in the exports until you " \
               "delete it for good."
    if action == "restore_set":
        label_sets.restore_set(label_set)
        return f"Label set {label_set.name} restored."
    clean(forms.DeleteSetForm, post)
    deleted = label_sets.delete_set(label_set)
    return f"Label set {label_set.name} deleted with its {deleted} annotations."


def _apply(request: HttpRequest, project: Project) -> str:
    """Carry out one posted action; returns the message to show. Raises ValueError on bad input
    (InvalidInput when the form does not validate)."""
    post = request.POST
    action = post.get("action")
    if action == "settings":
        services.update_settings(project, **clean(forms.SettingsForm, post))
        return "Settings saved."
    if action == "backbone":
        data = clean(forms.BackboneForm, post)
        started = services.change_backbone(project, data["backbone"], data["weights_path"])
        if started:
            return f"Switching to {data['backbone']}: embedding in the background; the current " \
                   "backbone keeps serving until it is done."
        return "Backbone unchanged."
    if action == "add_class":
        data = clean(forms.ClassNameForm, post)
        label_set = _set(project, data["label_set"]) if data["label_set"] else None
        services.add_class(project, data["name"] or "unnamed", label_set=label_set)
        return "Class added."
    if action in SET_ACTIONS:
        return _apply_set(project, action, post)
    if action == "edit_class":
        data = clean(forms.EditClassForm, post)
        label = _class(project, data["label"])
        services.rename_class(label, data["name"])
        services.set_hotkey(label, data["hotkey"])
        return f"Class {label.name} saved."
    if action == "reorder":
        services.reorder_classes(project, clean(forms.ReorderForm, post)["order"])
        return "Order saved."
    if action == "move_class":  # the ↑ / ↓ buttons
        data = clean(forms.MoveClassForm, post)
        label = _class(project, data["label"])
        services.move_class(label, data["direction"])
        return f"Moved {label.name} {data['direction']}."
    if action == "merge":
        data = clean(forms.MergeForm, post)
        source, target = _class(project, data["source"]), _class(project, data["target"])
        if source.pk == target.pk:
            raise ValueError(f"Pick two different classes: {source.name} cannot be merged into "
                             "itself. Nothing was changed.")
        moved = services.merge_classes(source, target)
        return f"Merged {source.name} into {target.name}: {moved} labels moved."
    if action == "member":
        data = clean(forms.MemberForm, post)
        user = get_user_model().objects.filter(username=data["username"]).first()
        if user is None:
            raise ValueError("No user with that username.")
        role = data["role"] or Role.ANNOTATOR
        services.set_member(project, user, role)
        return f"{user.get_username()} is now {role}."
    if action == "remove_member":
        membership = project.memberships.filter(
            pk=clean(forms.RemoveMemberForm, post)["membership"]
        ).first()
        if membership is None:
            raise ValueError("Unknown member.")
        if membership.user_id == request.user.pk:
            raise ValueError("You cannot remove yourself.")
        services.remove_member(project, membership.user)
        return "Member removed."
    raise ValueError("Unknown action.")


def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    if request.method == "POST":
        try:
            messages.success(request, _apply(request, project))
        except (ValueError, FileNotFoundError) as exc:  # bad input, unknown backbone, no weights
            messages.error(request, str(exc.args[0] if exc.args else exc))  # KeyError quotes str()
            return _page(request, project, status=400)
        url = reverse("projects:settings", args=[project.pk])
        chosen = request.GET.get("set", "")
        return redirect(f"{url}?set={chosen}" if chosen.isdigit() else url)
    return _page(request, project)


def _page(request: HttpRequest, project: Project, *, status: int = 200) -> HttpResponse:
    # The torch-free registries: the web process never imports torch (seconds per process).
    from worker.ml.backbone_specs import available_backbones
    from worker.ml.strategy_names import STRATEGY_NAMES

    project.refresh_from_db()
    sets = list(project.label_sets.all())
    chosen = request.GET.get("set", "")
    shown = next((s for s in sets if chosen.isdigit() and s.pk == int(chosen)), None) \
        or label_sets.primary_set(project)
    context = {
        "tab": "settings",
        "project": project,
        "label_sets": sets,
        "shown_set": shown,
        "classes": project.classes.filter(label_set=shown),
        "memberships": Membership.objects.filter(project=project).select_related("user"),
        "roles": Role.choices,
        "strategies": list(STRATEGY_NAMES),
        "backbones": available_backbones(),
        "embedding": active_job(project, Job.Kind.SWITCH_BACKBONE) or embedding_job(project),
        **check_context(project),
        "check_next": "settings",
    }
    return render(request, "projects/settings.html", context, status=status)
