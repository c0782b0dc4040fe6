"""The backbone check's two endpoints: run one (leads), and its progress for the pages' poller."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from labeler.projects.access import get_project_for

from .checks import latest_check, request_check

#: Where the "Run backbone check" button may send the lead back to (never a free URL).
RETURN_TO = {"settings": "projects:settings", "dashboard": "insights:dashboard"}


@require_POST
def run_check(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    if project.pending_backbone:
        messages.error(request, "A backbone switch is in progress: run the check once it is done.")
    elif request_check(project) is None:
        messages.error(request, "A backbone check is already running (or the task queue is down).")
    else:
        messages.success(request, "Backbone check started: the labeled items are embedded with "
                                  "every installed backbone; this page shows the result.")
    target = RETURN_TO.get(request.POST.get("next", ""), RETURN_TO["settings"])
    return redirect(target, project_id=project.pk)


@require_GET
def check_status(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id, lead=True)
    check = latest_check(project)
    if check is None:
        return JsonResponse({"status": "none"})
    return JsonResponse({
        "id": check.pk, "status": check.status, "done": check.done, "total": check.total,
        "stage": check.stage, "error": check.error,
    })
