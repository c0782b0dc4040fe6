"""The lead's webhooks page: add, pause, delete, and each hook's latest deliveries."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeler.projects.access import get_project_for
from labeler.projects.models import Project

from . import services
from .events import redeliver
from .models import Delivery, Event, Webhook


def _act(request: HttpRequest, project: Project) -> Webhook | None:
    """Apply the posted action; returns a new hook (its secret is shown once)."""
    action = request.POST.get("action")
    if action == "add":
        return services.create_webhook(project, request.POST.get("url", "").strip(),
                                       request.POST.getlist("events"), user=request.user)
    if action == "redeliver":
        raw = request.POST.get("delivery", "")
        delivery = (Delivery.objects.filter(pk=int(raw), webhook__project=project).first()
                    if raw.isdigit() and len(raw) < 19 else None)
        if delivery is None:
            raise ValueError("No such delivery in this project.")
        redeliver(delivery)
        return None
    raw = request.POST.get("webhook", "")
    hook = project.webhooks.filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 19 else None
    if hook is None:
        raise ValueError("No such webhook in this project.")
    if action == "delete":
        hook.delete()
    elif action in ("pause", "resume"):
        services.update_webhook(hook, active=action == "resume")
    else:
        raise ValueError("Unknown action.")
    return None


@require_http_methods(["GET", "POST"])
def webhooks_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    created, error, status = None, "", 200
    if request.method == "POST":
        try:
            created = _act(request, project)
            if created is None:
                return redirect("webhooks:page", project_id=project.pk)
        except ValueError as exc:  # UnsafeURL, unknown events, bad ids
            error, status = str(exc), 400
    hooks = list(project.webhooks.all())
    for hook in hooks:
        hook.recent = list(hook.deliveries.order_by("-id")[:20])
    response = render(request, "webhooks/page.html", {
        "project": project, "tab": "webhooks", "hooks": hooks, "events": Event.choices,
        "created": created, "error": error,
    }, status=status)
    response["Cache-Control"] = "no-store"
    return response
