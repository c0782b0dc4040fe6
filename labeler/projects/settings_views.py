"""The lead's project settings page: classes, learning settings, backbone, members and roles."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labeler.request_input import clean
from labeler.training.actions import active_job
from labeler.training.checks import check_context
from labeler.training.models import Job
from labeler.training.services import embedding_job

from . import forms, services
from .access import get_project_for
from .models import LabelClass, Membership, Project, Role


def _class(project: Project, pk: int) -> LabelClass:
    label = project.classes.filter(pk=pk).first()
    if label is None:
        raise ValueError("Unknown class.")
    return label


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
        services.add_class(project, clean(forms.ClassNameForm, post)["name"] or "unnamed")
        return "Class added."
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
        return redirect("projects:settings", project_id=project.pk)
    return _page(request, project)


def _page(request: HttpRequest, project: Project, *, status: int = 200) -> HttpResponse:
    # The torch-free registries: the web process never imports torch (seconds per process).
    from worker.ml.backbone_specs import available_backbones
    from worker.ml.strategy_names import STRATEGY_NAMES

    project.refresh_from_db()
    context = {
        "tab": "settings",
        "project": project,
        "classes": project.classes.all(),
        "memberships": Membership.objects.filter(project=project).select_related("user"),
        "roles": Role.choices,
        "strategies": list(STRATEGY_NAMES),
        "backbones": available_backbones(),
        "embedding": active_job(project, Job.Kind.SWITCH_BACKBONE) or embedding_job(project),
        **check_context(project),
        "check_next": "settings",
    }
    return render(request, "projects/settings.html", context, status=status)
