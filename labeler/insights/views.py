"""The ML lead's pages: dashboard, likely label errors, embedding map, item inspector, exports.

Every view needs a login (LoginRequiredMiddleware) and, except the thumbnail, the project's lead
role: get_project_for(..., lead=True) answers 404 to non-members and 403 to annotators.
"""

from __future__ import annotations

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

from labeler.annotations.forms import RelabelForm
from labeler.annotations.services import AnnotationError, save_annotation
from labeler.annotations.set_labels import labels_per_set
from labeler.annotations.views import item_and_label
from labeler.items.models import Item
from labeler.projects.access import get_project_for
from labeler.projects.label_sets import primary_set
from labeler.projects.models import LabelClass
from labeler.request_input import clean_json, json_errors
from labeler.training.checks import check_context

from . import curves, exports, maps, neighbours, services, set_views, thumbs


def _export_links(project) -> list[dict]:
    titles = {
        "csv": "Labels (CSV)", "json": "Labels (JSON)", "coco": "COCO (JSON)",
        "folders": "Images by class (zip)", "predictions": "Predictions (CSV)",
        "model": "Model: head + README (zip)", "coco-predictions": "COCO predictions (JSON)",
    }
    links = [
        {"format": f, "title": titles[f], "url": reverse("insights:export", args=[project.pk, f])}
        for f in exports.FORMATS
    ]
    links.insert(3, {"format": "coco", "title": "COCO, labelled images only",
                     "url": reverse("insights:export", args=[project.pk, "coco"]) + "?unlabeled=0"})
    return links


def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    try:
        label_set = set_views.chosen_set(request, project)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    if label_set is not None:
        return set_views.set_dashboard(request, project, label_set)
    counts = services.pool_counts(project)
    version = services.latest_version(project)
    curve = curves.learning_curve(project)
    distribution = counts["distribution"]
    evaluation = services.evaluation(project, version)
    people = services.annotator_stats(project)
    versions = curves.version_table(project)
    chart_data = {
        "curve": curve,
        "distribution": distribution,
        "confusion": None if evaluation is None else {
            "classes": evaluation["classes"],
            "cv": evaluation["cv"]["matrix"],
            "audit": evaluation["audit"]["matrix"] if evaluation["audit"] else None,
            # A cell opens the item table on its (given label, out-of-fold prediction) items.
            "class_ids": evaluation["class_ids"],
            "items_url": reverse("insights:items", args=[project.pk]),
        },
    }
    context = {
        "tab": "dashboard",
        "project": project,
        "version": version,
        "labels_total": counts["labels"],
        "audit_total": counts["audit"],
        "items_total": counts["items"],
        "curve": curve,
        "distribution": distribution,
        "evaluation": evaluation,
        "people": people,
        "versions": versions,
        "exports": _export_links(project),
        "readme": exports.model_readme(project, version) if version else None,
        "chart_data": chart_data,
        "sets_nav": set_views.set_nav(project, None),
        **check_context(project),
        "check_next": "dashboard",
    }
    return render(request, "insights/dashboard.html", context)


def label_errors(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    try:
        label_set = set_views.chosen_set(request, project)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    if label_set is not None and label_set.multi:
        return HttpResponse("Label errors are found in single-choice sets; a multi-label set's "
                            "per-tag scores are on its dashboard.", status=400,
                            content_type="text/plain; charset=utf-8")
    show_all = request.GET.get("all") == "1"
    classes = services.classes_of(project) if label_set is None else list(
        label_set.classes.all())
    given = request.GET.get("given", "")
    if given and given not in {str(c.pk) for c in classes}:
        return HttpResponse("given must be the id of one of this project's classes.", status=400,
                            content_type="text/plain; charset=utf-8")
    result = services.label_issues(project, include_reviewed=show_all, label_set=label_set)
    if given:  # only the labels given as this class
        result["issues"] = [r for r in result["issues"] if r["given"] and str(r["given"].pk) == given]
    return render(request, "insights/label_errors.html", {
        "tab": "errors",
        "project": project,
        "classes": classes,
        "given": given,
        "result": result,
        "show_all": show_all,
        "set_query": f"&set={label_set.pk}" if label_set else "",
        "sets_nav": set_views.set_nav(
            project, label_set, reverse("insights:label_errors", args=[project.pk])),
        "relabel_url": reverse("insights:relabel", args=[project.pk, 0]).replace("/0/", "/{id}/"),
    })


def embedding_map(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    try:
        label_set = set_views.chosen_set(request, project)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    data_url = reverse("insights:map_data", args=[project.pk])
    config = {
        "dataUrl": data_url + (f"?set={label_set.pk}" if label_set else ""),
        "thumbUrl": reverse("insights:thumb", args=[0]).replace("/0/", "/{id}/"),
        "itemUrl": reverse("insights:item", args=[project.pk, 0]).replace("/0/", "/{id}/"),
    }
    context = {"tab": "map", "project": project, "config": config,
               "sets_nav": set_views.set_nav(project, label_set,
                                             reverse("insights:map", args=[project.pk]))}
    return render(request, "insights/map.html", context)


@require_GET
def map_data(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for(request.user, project_id, lead=True)
    try:
        label_set = set_views.chosen_set(request, project)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(maps.map_payload(project, label_set))


def item_detail(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project = get_project_for(request.user, project_id, lead=True)
    item = get_object_or_404(Item, pk=item_id, project=project)
    details = services.item_details(project, item)
    return render(request, "insights/item.html", {
        "project": project,
        "item": item,
        "details": details,
        "neighbours": neighbours.neighbour_rows(project, item),
        "relabel_url": reverse("insights:relabel", args=[project.pk, item.pk]),
    })


@require_POST
@json_errors
def relabel(request: HttpRequest, project_id: int, item_id: int) -> JsonResponse:
    """The lead's label for an item (a correction, or a 'keep' of the given label)."""
    project = get_project_for(request.user, project_id, lead=True)
    label_id = clean_json(request, RelabelForm)["label"]
    found = item_and_label(project, item_id, label_id)
    if found is None:
        return JsonResponse({"error": "Unknown item or class for this project."}, status=404)
    item, label = found
    try:
        annotation, created = save_annotation(item, label, request.user)
    except AnnotationError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    primary = primary_set(project)
    if primary is not None and label.label_set_id != primary.pk:  # another set's relabel
        current = labels_per_set(project, only=label.label_set_id, items=[item.pk]).get(
            label.label_set_id, {}).get(item.pk)
    else:
        # save_annotation refreshed the item's denormalised current label (the retrain's rule).
        current = Item.objects.filter(pk=item.pk).values_list("current_label_id",
                                                              flat=True).first()
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
    unlabeled = request.GET.get("unlabeled", "1")
    if unlabeled not in ("0", "1"):
        return HttpResponse("unlabeled must be 0 (leave unlabelled images out) or 1.", status=400,
                            content_type="text/plain; charset=utf-8")
    try:
        number = int(version) if version else None
        stream = exports.export(project, fmt, version=number, unlabeled=unlabeled == "1")
    except ValueError as exc:  # ExportError, or a bad version number
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    content_type, _ = exports.FORMATS[fmt]
    response = StreamingHttpResponse(stream, content_type=content_type)
    name = exports.filename_for(project, fmt)
    if number and fmt in ("model", "predictions", "coco-predictions"):
        stem, ext = name.rsplit(".", 1)
        name = f"{stem}-v{number}.{ext}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def thumb(request: HttpRequest, item_id: int) -> FileResponse:
    item = get_object_or_404(Item.objects.only("project_id", "image", "source", "sha256"),
                             pk=item_id)
    get_project_for(request.user, item.project_id)
    try:
        path = thumbs.thumbnail_for(item)
    except (FileNotFoundError, OSError) as exc:
        raise Http404("Image missing or unreadable.") from exc
    # Always a JPEG that Pillow wrote (thumbs.make_thumb), whatever the original was.
    response = FileResponse(open(path, "rb"), content_type="image/jpeg",
                            filename=f"thumb-{item_id}.jpg")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
