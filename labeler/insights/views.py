"""The ML lead's pages: dashboard, likely label errors, embedding map, item inspector, exports.

Every view needs a login (LoginRequiredMiddleware) and, except the thumbnail, the project's lead
role: get_project_for(..., lead=True) answers 404 to non-members and 403 to annotators.
"""

from __future__ import annotations

import json

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeler.annotations.services import AnnotationError, save_annotation
from labeler.annotations.views import item_and_label
from labeler.items.models import Item
from labeler.projects.access import get_project_for
from labeler.projects.models import LabelClass
from labeler.training.checks import check_context

from . import exports, maps, services, thumbs


def _export_links(project) -> list[dict]:
    titles = {
        "csv": "Labels (CSV)", "json": "Labels (JSON)", "coco": "COCO (JSON)",
        "folders": "Images by class (zip)", "predictions": "Predictions (CSV)",
        "model": "Model: head + README (zip)",
    }
    return [
        {"format": f, "title": titles[f], "url": reverse("insights:export", args=[project.pk, f])}
        for f in exports.FORMATS
    ]


def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    labels, audit = services.current_labels(project)
    version = services.latest_version(project)
    curve = services.learning_curve(project)
    distribution = services.class_distribution(project, labels)
    evaluation = services.evaluation(project, version)
    people = services.annotator_stats(project)
    versions = list(project.model_versions.order_by("-number")[:50])
    chart_data = {
        "curve": curve,
        "distribution": distribution,
        "confusion": None if evaluation is None else {
            "classes": evaluation["classes"],
            "cv": evaluation["cv"]["matrix"],
            "audit": evaluation["audit"]["matrix"] if evaluation["audit"] else None,
        },
    }
    context = {
        "tab": "dashboard",
        "project": project,
        "version": version,
        "labels_total": len(labels),
        "audit_total": len(audit),
        "items_total": Item.objects.filter(project=project).count(),
        "curve": curve,
        "distribution": distribution,
        "evaluation": evaluation,
        "people": people,
        "versions": versions,
        "exports": _export_links(project),
        "readme": exports.model_readme(project, version) if version else None,
        "chart_data": chart_data,
        **check_context(project),
        "check_next": "dashboard",
    }
    return render(request, "insights/dashboard.html", context)


def label_errors(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    show_all = request.GET.get("all") == "1"
    result = services.label_issues(project, include_reviewed=show_all)
    return render(request, "insights/label_errors.html", {
        "tab": "errors",
        "project": project,
        "classes": services.classes_of(project),
        "result": result,
        "show_all": show_all,
        "relabel_url": reverse("insights:relabel", args=[project.pk, 0]).replace("/0/", "/{id}/"),
    })


def embedding_map(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    config = {
        "dataUrl": reverse("insights:map_data", args=[project.pk]),
        "thumbUrl": reverse("insights:thumb", args=[0]).replace("/0/", "/{id}/"),
        "itemUrl": reverse("insights:item", args=[project.pk, 0]).replace("/0/", "/{id}/"),
    }
    context = {"tab": "map", "project": project, "config": config}
    return render(request, "insights/map.html", context)


@require_GET
def map_data(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id, lead=True)
    return JsonResponse(maps.map_payload(project))


def item_detail(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    item = get_object_or_404(Item, pk=item_id, project=project)
    details = services.item_details(project, item)
    return render(request, "insights/item.html", {
        "project": project,
        "item": item,
        "details": details,
        "relabel_url": reverse("insights:relabel", args=[project.pk, item.pk]),
    })


@require_POST
def relabel(request: HttpRequest, project_id: int, item_id: int) -> JsonResponse:
    """The lead's label for an item (a correction, or a 'keep' of the given label)."""
    project = get_project_for(request.user, project_id, lead=True)
    try:
        body = json.loads(request.body or b"{}")
        label_id = int(body["label"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "Send JSON with an integer 'label'."}, status=400)
    found = item_and_label(project, item_id, label_id)
    if found is None:
        return JsonResponse({"error": "Unknown item or class for this project."}, status=404)
    item, label = found
    try:
        annotation, created = save_annotation(item, label, request.user)
    except AnnotationError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    labels, _ = services.current_labels(project)
    current = labels.get(item.pk)
    payload = {"item": item.pk, "label": label.pk, "current": current, "created": created}
    if current != label.pk:
        name = LabelClass.objects.filter(pk=current).values_list("name", flat=True).first()
        payload["warning"] = (
            f"Saved, but other annotators' majority still says {name!r}: the item keeps that label."
        )
    return JsonResponse(payload, status=201 if created else 200)


@require_GET
def export(request: HttpRequest, project_id: int, fmt: str) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    if fmt not in exports.FORMATS:
        raise Http404("Unknown export format.")
    version = request.GET.get("version")
    try:
        number = int(version) if version else None
        stream = exports.export(project, fmt, version=number)
    except ValueError as exc:  # ExportError, or a bad version number
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    content_type, _ = exports.FORMATS[fmt]
    response = StreamingHttpResponse(stream, content_type=content_type)
    name = exports.filename_for(project, fmt)
    if number and fmt in ("model", "predictions"):
        stem, ext = name.rsplit(".", 1)
        name = f"{stem}-v{number}.{ext}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def thumb(request: HttpRequest, item_id: int) -> FileResponse:
    item = get_object_or_404(Item.objects.only("project_id", "image", "sha256"), pk=item_id)
    get_project_for(request.user, item.project_id)
    try:
        path = thumbs.thumbnail_for(item)
    except (FileNotFoundError, OSError) as exc:
        raise Http404("Image missing or unreadable.") from exc
    response = FileResponse(open(path, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
