"""Project pages: list, create, detail (with upload) and the JSON status the pages poll."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from labeler.items.models import Item
from labeler.training.chunks import in_flight
from labeler.training.models import ModelVersion
from labeler.training.services import embedding_job, retraining
from labeler.training.sweep import delay_notice

from .access import get_project_for, role_of, visible_projects
from .forms import ProjectForm
from .models import Project, Role
from .services import create_project


def project_list(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(request.user).order_by("name")
    rows = [
        {
            "project": p,
            "items": p.items.count(),
            "labeled": p.items.filter(annotation_count__gt=0).count(),
            "role": role_of(request.user, p),
        }
        for p in projects
    ]
    return render(request, "projects/list.html", {"rows": rows})


def project_create(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only admins create projects.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        project = create_project(
            data["name"], data["classes"], lead=request.user,
            description=data["description"], retrain_every=data["retrain_every"],
        )
        messages.success(request, f"Project {project.name} created.")
        return redirect("projects:detail", project_id=project.pk)
    return render(request, "projects/create.html", {"form": form})


def status_payload(project: Project) -> dict:
    """What the pages poll: embedding progress, labels, current model, retraining flag."""
    project.refresh_from_db()
    total = Item.objects.filter(project=project).count()
    labeled = Item.objects.filter(project=project, annotation_count__gt=0).count()
    latest = ModelVersion.objects.latest_ready(project)
    job = embedding_job(project)
    done, rate = (job.done if job is not None else 0), 0.0
    if job is not None and job.active:
        running, rate = in_flight(job)  # chunks on their workers now, all together
        done, rate = min(done + running, job.total or done + running), rate or job.rate
    remaining = max(job.total - done, 0) if job is not None else 0
    return {
        "items": total,
        "labeled": labeled,
        "embedding": {
            "status": job.status if job is not None else "idle",
            "done": done,
            "total": job.total if job is not None else 0,
            "message": job.message if job is not None else "",
            "images_per_second": round(rate, 1),
            "seconds_left": round(remaining / rate) if rate else None,
        },
        "retraining": retraining(project),
        # A sentence when background work is late (broker down, worker dead), else None.
        "delayed": delay_notice(project),
        "model": None
        if latest is None
        else {
            "version": latest.number,
            "labels_used": latest.labels_used,
            "cv_accuracy": latest.metrics.get("cv_accuracy"),
            "audit_accuracy": latest.metrics.get("audit_accuracy"),
            "audit_ci": latest.metrics.get("audit_ci"),
            "audit_n": latest.metrics.get("audit_n"),
        },
    }


def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id)
    role = role_of(request.user, project)
    report = None
    if request.method == "POST":
        if role != Role.LEAD:
            raise PermissionDenied("Only the project's leads may upload images.")
        from labeler.items.importing import import_uploads

        files = request.FILES.getlist("files")
        if not files:
            messages.error(request, "Choose one or more images or a .zip archive.")
        else:
            report = import_uploads(project, files, user=request.user)
            level = messages.WARNING if report.errors else messages.SUCCESS
            messages.add_message(request, level, f"Upload: {report.summary()}.")
    context = {
        "project": project,
        "role": role,
        "is_lead": role == Role.LEAD,
        "status": status_payload(project),
        "versions": project.model_versions.all()[:20],
        "classes": project.classes.all(),
        "report": report,
    }
    return render(request, "projects/detail.html", context)


@require_GET
def project_status(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    return JsonResponse(status_payload(project))
