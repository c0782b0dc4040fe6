"""The labeling page and its JSON API (next items, save a label)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeler.items.models import Item
from labeler.projects.access import get_project_for
from labeler.projects.models import LabelClass, Project
from labeler.request_input import ID_MAX, clean, clean_json, json_errors

from .forms import AnnotateForm, GridConfirmForm, GridItemsQuery, NextQuery, SkipForm
from .queue import grid_items, next_items
from .services import AnnotationError, confirm_grid, save_annotation, skip_item


def class_payload(project: Project) -> list[dict]:
    return [
        {"id": c.pk, "name": c.name, "hotkey": c.hotkey, "color": c.color}
        for c in project.classes.all()
    ]


def label_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id)
    config = {
        "project": project.pk,
        "classes": class_payload(project),
        "nextUrl": reverse("annotations:next", args=[project.pk]),
        "saveUrl": reverse("annotations:annotate", args=[project.pk]),
        "statusUrl": reverse("projects:status", args=[project.pk]),
        "skipUrl": reverse("annotations:skip", args=[project.pk]),
        "gridUrl": reverse("annotations:grid", args=[project.pk]),
    }
    return render(request, "annotations/label.html", {"project": project, "config": config})


def grid_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id)
    config = {
        "project": project.pk,
        "classes": class_payload(project),
        "itemsUrl": reverse("annotations:grid_items", args=[project.pk]),
        "confirmUrl": reverse("annotations:grid_confirm", args=[project.pk]),
        "labelUrl": reverse("annotations:label", args=[project.pk]),
        "statusUrl": reverse("projects:status", args=[project.pk]),
    }
    return render(request, "annotations/grid.html", {"project": project, "config": config})


def item_and_label(project: Project, item_id: int, label_id: int) -> tuple[Item, LabelClass] | None:
    """The item and the class, if both belong to `project` (else None: answer 404).

    One query for both, loading only what saving a label needs (other fields stay deferred):
    this runs on every label of every annotator.
    """
    if not (0 < item_id <= ID_MAX and 0 < label_id <= ID_MAX):
        return None  # the raw query would overflow
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.id, i.leased_by_id, i.lease_is_audit FROM {Item._meta.db_table} i"
            f" WHERE i.id = %s AND i.project_id = %s AND EXISTS (SELECT 1 FROM"
            f" {LabelClass._meta.db_table} c WHERE c.id = %s AND c.project_id = %s)",
            [item_id, project.pk, label_id, project.pk],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    item = Item.from_db(
        connection.alias, ["id", "project_id", "leased_by_id", "lease_is_audit"],
        [row[0], project.pk, row[1], bool(row[2])],
    )
    item.project = project
    label = LabelClass.from_db(connection.alias, ["id", "project_id"], [label_id, project.pk])
    return item, label


def item_payload(item: Item) -> dict:
    suggestion = None
    if item.predicted_class_id is not None:
        suggestion = {
            "label": item.predicted_class_id,
            "confidence": round(float(item.predicted_confidence or 0.0), 4),
        }
    return {
        "id": item.pk,
        "url": reverse("items:image", args=[item.pk]),
        "name": item.original_name,
        "width": item.width,
        "height": item.height,
        "suggestion": suggestion,
    }


@require_GET
@json_errors
def api_next(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    query = clean(NextQuery, request.GET)
    n = max(1, min(query["n"] or 1, 20))
    items = next_items(project, request.user, n, exclude=query["exclude"])
    return JsonResponse({"items": [item_payload(i) for i in items]})


@require_POST
@json_errors
def api_annotate(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    body = clean_json(request, AnnotateForm)
    found = item_and_label(project, body["item"], body["label"])
    if found is None:
        return JsonResponse({"error": "Unknown item or class for this project."}, status=404)
    item, label = found
    try:
        annotation, created = save_annotation(
            item, label, request.user,
            seconds_spent=body["seconds"] or 0.0,
            client_id=body["client_id"],
        )
    except AnnotationError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {"id": annotation.pk, "item": item.pk, "label": annotation.label_id, "created": created},
        status=201 if created else 200,
    )


@require_POST
@json_errors
def api_skip(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    body = clean_json(request, SkipForm)
    item = Item.objects.filter(pk=body["item"], project=project).first()
    if item is None:
        return JsonResponse({"error": "Unknown item for this project."}, status=404)
    skip = skip_item(item, request.user, body["reason"])
    return JsonResponse({"item": item.pk, "skipped": True, "reason": skip.reason})


@require_GET
@json_errors
def api_grid_items(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    query = clean(GridItemsQuery, request.GET)
    label_id = query["label"]
    n = max(1, min(36 if query["n"] is None else query["n"], 48))
    if not LabelClass.objects.filter(pk=label_id, project=project).exists():
        return JsonResponse({"error": "Unknown class for this project."}, status=404)
    items = grid_items(project, request.user, label_id, n)
    return JsonResponse({"label": label_id, "items": [item_payload(i) for i in items]})


@require_POST
@json_errors
def api_grid_confirm(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    body = clean_json(request, GridConfirmForm)
    label = LabelClass.objects.filter(pk=body["label"], project=project).first()
    confirmed, rejected = body["confirmed"], body["rejected"]
    if label is None:
        return JsonResponse({"error": "Unknown class for this project."}, status=404)
    items = {i.pk: i for i in Item.objects.filter(project=project, pk__in=confirmed + rejected)}
    if len(items) != len(set(confirmed + rejected)):
        return JsonResponse({"error": "Some items are not in this project."}, status=404)
    created = confirm_grid(
        [items[i] for i in confirmed], label, request.user, rejected=[items[i] for i in rejected]
    )
    return JsonResponse({"confirmed": len(confirmed), "created": created, "rejected": len(rejected)})
