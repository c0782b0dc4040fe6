"""The error browser's table page (leads and staff only, per project)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from labeler.projects.access import get_project_for

from . import browse


def item_table(request: HttpRequest, project_id: int) -> HttpResponse:
    """Items with thumbnails, filtered and sorted; bad filters answer 400 with the reasons."""
    project = get_project_for(request.user, project_id, lead=True)
    form = browse.ItemFilterForm(request.GET or None, project=project,
                                 users=browse.member_users(project))
    context = {
        "tab": "items",
        "project": project,
        "form": form,
        "classes": {c.pk: c for c in project.classes.all()},
        "class_list": list(project.classes.all()),
        "relabel_url": reverse("insights:relabel", args=[project.pk, 0]).replace("/0/", "/{id}/"),
        "page": None,
    }
    if request.GET and not form.is_valid():
        return render(request, "insights/items.html", context, status=400)
    data = form.cleaned_data if request.GET else {"sort": "id", "cursor": None, "per_page": 50}
    context["page"] = result = browse.page(project, data)
    classes = context["classes"]
    for it in result.items:
        it.label_cls = classes.get(it.current_label_id)
        it.oof_cls = classes.get(it.oof_predicted_id)
        it.pred_cls = classes.get(it.predicted_class_id)
    if result.next_cursor:
        query = request.GET.copy()
        query["after"] = result.next_cursor
        context["next_query"] = query.urlencode()
    query = request.GET.copy()
    query.pop("after", None)
    context["first_query"] = query.urlencode()
    context["is_first"] = not data.get("cursor")
    return render(request, "insights/items.html", context)
