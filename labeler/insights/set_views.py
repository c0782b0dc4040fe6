"""The dashboard of one label set beyond the primary one (``?set=<id>``): its labels and
predictions per class or tag, its head's metrics from the latest version (confusion matrix and
per-class scores for a single-choice set; per-tag precision / recall / F1, average precision
and mAP for a multi-label set), audit accuracy with its interval, its likely label errors, and
every version's numbers for the set. The primary set keeps the full dashboard."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from labeler.annotations.set_labels import labels_per_set
from labeler.items.models import Item, Prediction
from labeler.projects.label_sets import primary_set
from labeler.projects.models import LabelSet, Project

from . import services


def chosen_set(request: HttpRequest, project: Project) -> LabelSet | None:
    """The non-primary set named by ``?set=`` (None: the primary set, the usual dashboard).
    A value that names no set of the project is a ValueError (the view answers 400)."""
    raw = request.GET.get("set", "")
    if not raw:
        return None
    label_set = project.label_sets.filter(pk=int(raw)).first() if raw.isdigit() else None
    if label_set is None:
        raise ValueError("set must be the id of one of this project's label sets.")
    primary = primary_set(project)
    return None if primary is not None and primary.pk == label_set.pk else label_set


def set_nav(project: Project, current: LabelSet | None, url: str = "") -> list[dict]:
    """Links to every set's page (the dashboard, or `url`); empty for a project with one set."""
    sets = list(project.label_sets.filter(removed_at__isnull=True))
    if len(sets) < 2:
        return []
    primary = primary_set(project)
    url = url or reverse("insights:dashboard", args=[project.pk])
    return [{"name": s.name, "kind": s.kind,
             "url": url if primary and s.pk == primary.pk else f"{url}?set={s.pk}",
             "active": (current.pk if current else primary.pk if primary else None) == s.pk}
            for s in sets]


def _distribution(label_set: LabelSet, answers: dict) -> list[dict]:
    labelled: Counter = Counter()
    for value in answers.values():
        labelled.update(value if label_set.multi else [value])
    predicted = dict(Prediction.objects.filter(label_set=label_set, label__isnull=False)
                     .values_list("label").annotate(n=Count("pk")).values_list("label", "n"))
    unlabelled = dict(Prediction.objects.filter(label_set=label_set, label__isnull=False,
                                                item__annotation_count=0)
                      .values_list("label").annotate(n=Count("pk")).values_list("label", "n"))
    return [{"id": c.pk, "name": c.name, "color": c.color, "labeled": labelled.get(c.pk, 0),
             "predicted": predicted.get(c.pk, 0), "predicted_unlabeled": unlabelled.get(c.pk, 0)}
            for c in label_set.classes.all()]


def _tag_rows(label_set: LabelSet, metrics: dict) -> list[dict]:
    names = {str(c.pk): c for c in label_set.classes.all()}
    rows = []
    for j, tag in enumerate(metrics.get("tags", [])):
        c = names.get(tag)
        rows.append({"name": c.name if c else f"#{tag} (deleted)", "color": c.color if c else "",
                     **{k: metrics[k][j] for k in ("precision", "recall", "f1", "support",
                                                   "average_precision") if k in metrics}})
    return rows


def _issues(label_set: LabelSet, metrics: dict, answers: dict) -> list[dict]:
    classes = {c.pk: c for c in label_set.classes.all()}
    raw = metrics.get("label_issues", [])[:50]
    items = Item.objects.in_bulk([r["item"] for r in raw])
    return [{"item": items[r["item"]], "given": classes.get(r["given"]),
             "suggested": classes.get(r["suggested"]),
             "current": classes.get(answers.get(r["item"])),
             "confidence": r.get("suggested_confidence")}
            for r in raw if r["item"] in items]


def set_dashboard(request: HttpRequest, project: Project, label_set: LabelSet) -> HttpResponse:
    answers = labels_per_set(project, only=label_set.pk).get(label_set.pk, {})
    version = services.latest_version(project)
    metrics = ((version.metrics or {}).get("sets") or {}).get(str(label_set.pk)) \
        if version else None
    evaluation = None
    if metrics and not label_set.multi:
        evaluation = services.evaluation(project, version, metrics=metrics)
    history = [
        {"number": v.number, "labels": (v.metrics.get("sets") or {}).get(str(label_set.pk), {})}
        for v in project.model_versions.filter(status="ready").order_by("-number")[:30]
    ]
    distribution = _distribution(label_set, answers)
    chart_data = {
        "curve": None, "distribution": distribution,
        "confusion": None if evaluation is None else {
            "classes": evaluation["classes"], "cv": evaluation["cv"]["matrix"],
            "audit": evaluation["audit"]["matrix"] if evaluation["audit"] else None,
            "class_ids": None, "items_url": None,
        },
    }
    return render(request, "insights/set_dashboard.html", {
        "tab": "dashboard", "project": project, "label_set": label_set,
        "sets_nav": set_nav(project, label_set), "version": version, "metrics": metrics,
        "labels_total": len(answers), "evaluation": evaluation,
        "tag_rows": _tag_rows(label_set, metrics) if metrics and label_set.multi else None,
        "issues": _issues(label_set, metrics, answers) if metrics and not label_set.multi
        else None,
        "history": history, "distribution": distribution, "chart_data": chart_data,
    })
