"""Images are served through this view only, so that a login and membership are required."""

from __future__ import annotations

import mimetypes

from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from labeler.projects.access import get_project_for

from .models import Item


@require_GET
def item_image(request: HttpRequest, item_id: int) -> FileResponse:
    item = get_object_or_404(Item.objects.only("project_id", "image"), pk=item_id)
    get_project_for(request.user, item.project_id)
    try:
        handle = item.image.open("rb")
    except FileNotFoundError as exc:
        raise Http404("Image file missing.") from exc
    content_type = mimetypes.guess_type(item.image.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type)
    # Content-addressed files never change: let the browser cache them (private: needs login).
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
