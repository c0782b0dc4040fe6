"""The lead's project settings page: classes, learning settings, backbone, members and roles."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labeler.training.checks import check_context

from . import services
from .access import get_project_for
from .models import LabelClass, Membership, Project, Role


def _class(project: Project, pk: str | None) -> LabelClass:
    label = project.classes.filter(pk=int(pk or 0)).first()
    if label is None:
        raise ValueError("Unknown class.")
    return label


def _apply(request: HttpRequest, project: Project) -> str:
    """Carry out one posted action; returns the message to show. Raises ValueError on bad input."""
    post = request.POST
    action = post.get("action")
    if action == "settings":
        services.update_settings(
            project,
            query_strategy=post["query_strategy"],
            retrain_every=int(post["retrain_every"]),
            audit_share=float(post["audit_share"]),
            overlap=int(post["overlap"]),
            lease_seconds=int(post["lease_seconds"]),
        )
        return "Settings saved."
    if action == "backbone":
        started = services.change_backbone(
            project, post["backbone"], post.get("weights_path", "").strip()
        )
        if started:
            return f"Switching to {post['backbone']}: embedding in the background; the current " \
                   "backbone keeps serving until it is done."
        return "Backbone unchanged."
    if action == "add_class":
        services.add_class(project, post["name"].strip() or "unnamed")
        return "Class added."
    if action == "edit_class":
        label = _class(project, post.get("label"))
        services.rename_class(label, post["name"])
        services.set_hotkey(label, post.get("hotkey", ""))
        return f"Class {label.name} saved."
    if action == "reorder":
        order = [int(x) for x in post["order"].split(",") if x.strip()]
        services.reorder_classes(project, order)
        return "Order saved."
    if action == "merge":
        source, target = _class(project, post.get("source")), _class(project, post.get("target"))
        moved = services.merge_classes(source, target)
        return f"Merged {source.name} into {target.name}: {moved} labels moved."
    if action == "member":
        user = get_user_model().objects.filter(username=post.get("username", "").strip()).first()
        if user is None:
            raise ValueError("No user with that username.")
        services.set_member(project, user, post.get("role", Role.ANNOTATOR))
        return f"{user.get_username()} is now {post.get('role')}."
    if action == "remove_member":
        membership = project.memberships.filter(pk=int(post.get("membership", 0))).first()
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
        except (ValueError, KeyError) as exc:  # includes unknown backbone / missing weights
            messages.error(request, str(exc).strip("'\""))
        except FileNotFoundError as exc:
            messages.error(request, str(exc))
        return redirect("projects:settings", project_id=project.pk)
    from worker.ml.backbones import available_backbones
    from worker.ml.strategies import STRATEGIES

    project.refresh_from_db()
    context = {
        "project": project,
        "classes": project.classes.all(),
        "memberships": Membership.objects.filter(project=project).select_related("user"),
        "roles": Role.choices,
        "strategies": list(STRATEGIES),
        "backbones": available_backbones(),
        **check_context(project),
        "check_next": "settings",
    }
    return render(request, "projects/settings.html", context)
