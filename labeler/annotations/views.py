"""The labeling page and its JSON API (next items, save a label)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeler.items.models import Item, Prediction
from labeler.projects.access import get_project_for
from labeler.projects.label_sets import active_sets, primary_set
from labeler.projects.models import LabelClass, LabelSet, Project, SetKind
from labeler.request_input import ID_MAX, clean, clean_json, json_errors

from .answers import resolve_answers
from .forms import AnnotateForm, GridConfirmForm, GridItemsQuery, NextQuery, SkipForm
from .queue import grid_items, next_items
from .services import AnnotationError, confirm_grid, save_annotation, save_answers, skip_item


def class_payload(project: Project) -> list[dict]:
    """The classes of the project's active label sets, in set order then class order."""
    return [
        {"id": c.pk, "name": c.name, "hotkey": c.hotkey, "color": c.color, "set": c.label_set_id}
        for c in project.classes.filter(label_set__removed_at__isnull=True)
        .order_by("label_set__order", "label_set_id", "order", "id")
    ]


def set_payload(project: Project) -> list[dict]:
    return [{"id": s.pk, "name": s.name, "kind": s.kind} for s in active_sets(project)]


def label_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id)
    config = {
        "project": project.pk,
        "classes": class_payload(project),
        "sets": set_payload(project),
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
        "sets": set_payload(project),
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
            f"SELECT i.id, i.leased_by_id, i.lease_is_audit, c.label_set_id"
            f" FROM {Item._meta.db_table} i, {LabelClass._meta.db_table} c,"
            f" {LabelSet._meta.db_table} s WHERE i.id = %s AND i.project_id = %s"
            " AND c.id = %s AND c.project_id = %s AND s.id = c.label_set_id"
            " AND s.removed_at IS NULL AND s.kind = %s",  # tags are answered with "labels"
            [item_id, project.pk, label_id, project.pk, SetKind.SINGLE],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    item = Item.from_db(
        connection.alias, ["id", "project_id", "leased_by_id", "lease_is_audit"],
        [row[0], project.pk, row[1], bool(row[2])],
    )
    item.project = project
    label = LabelClass.from_db(
        connection.alias, ["id", "project_id", "label_set_id"], [label_id, project.pk, row[3]]
    )
    return item, label


def item_payload(item: Item, predictions: dict[int, list[dict]] | None = None) -> dict:
    """What the page needs of an item. `suggestion` is the primary set's (the item's columns);
    `suggestions` the other sets' prediction rows (labeler.items.models.Prediction)."""
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
        "suggestions": (predictions or {}).get(item.pk, []),
    }


def predictions_of(items: list[Item]) -> dict[int, list[dict]]:
    """The other sets' predictions of these items: one indexed query."""
    found: dict[int, list[dict]] = {}
    if not items:
        return found
    for item_id, set_id, label_id, confidence in Prediction.objects.filter(
        item_id__in=[i.pk for i in items]
    ).order_by().values_list("item_id", "label_set_id", "label_id", "confidence"):
        found.setdefault(item_id, []).append(
            {"set": set_id, "label": label_id, "confidence": round(float(confidence), 4)}
        )
    return found


@require_GET
@json_errors
def api_next(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    query = clean(NextQuery, request.GET)
    n = max(1, min(query["n"] or 1, 20))
    items = next_items(project, request.user, n, exclude=query["exclude"])
    predictions = predictions_of(items)
    return JsonResponse({"items": [item_payload(i, predictions) for i in items]})


@require_POST
@json_errors
def api_annotate(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id)
    body = clean_json(request, AnnotateForm)
    if body["labels"]:
        return _annotate_sets(request, project, body)
    if body["label"] is None:
        return JsonResponse({"error": "Give a label, or labels for every set."}, status=400)
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


def _annotate_sets(request: HttpRequest, project: Project, body: dict) -> JsonResponse:
    """A visit's answers for several label sets at once."""
    try:
        found = resolve_answers(project, body["item"], body["labels"])
        if found is None:
            return JsonResponse({"error": "Unknown item for this project."}, status=404)
        item, answers = found
        rows, created = save_answers(
            item, answers, request.user,
            seconds_spent=body["seconds"] or 0.0, client_id=body["client_id"],
        )
    except AnnotationError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    by_set = {a.set_id: a for a in answers}
    return JsonResponse({
        "item": item.pk, "created": created,
        "answers": [
            {"set": r.label_set_id, "id": r.pk, "label": r.label_id,
             **({"tags": list(by_set[r.label_set_id].tags)}
                if by_set.get(r.label_set_id) and by_set[r.label_set_id].tags is not None
                else {})}
            for r in rows
        ],
    }, status=201 if created else 200)


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
    set_id = LabelClass.objects.filter(pk=label_id, project=project).values_list(
        "label_set_id", flat=True).first()
    if set_id is None:
        return JsonResponse({"error": "Unknown class for this project."}, status=404)
    primary = primary_set(project)
    own_columns = primary is not None and primary.pk == set_id
    items = grid_items(project, request.user, label_id, n, own_columns=own_columns)
    predictions = predictions_of(items)
    return JsonResponse({"label": label_id, "items": [item_payload(i, predictions) for i in items]})


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
