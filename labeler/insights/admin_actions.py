"""Admin action: download the labels of the selected projects (used by ProjectAdmin)."""

from __future__ import annotations

from django.contrib import admin
from django.http import StreamingHttpResponse

from . import exports


@admin.action(description="Export labels (zip: CSV, JSON and COCO per project)")
def export_labels(modeladmin, request, queryset):
    projects = list(queryset.order_by("pk"))

    def entries():
        for p in projects:
            folder = f"{p.pk}-{exports._safe(p.name, 'project')}"
            yield f"{folder}/labels.csv", exports.export_csv(p)
            yield f"{folder}/labels.json", exports.export_json(p)
            yield f"{folder}/coco.json", exports.export(p, "coco")

    response = StreamingHttpResponse(exports.zip_stream(entries()), content_type="application/zip")
    name = "labels.zip" if len(projects) != 1 else exports.filename_for(projects[0], "csv")[:-4]
    if not name.endswith(".zip"):
        name += ".zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
