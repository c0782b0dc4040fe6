"""Images are served through this view only, so that a login and membership are required."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from labeler.projects.access import get_project_for

from .models import Item
from .sources import ImageUnavailable, open_image
from .validation import detect_type


@require_GET
def item_image(request: HttpRequest, item_id: int) -> FileResponse:
    """The original image, typed by its decoded content (never by a stored or client name).

    Files stored before names came from the content (e.g. ``<sha>.html`` holding a JPEG with
    HTML appended) are so served as the image they are; anything that is not one of the
    imported image formats is refused rather than served as something a browser may run.
    """
    item = get_object_or_404(Item.objects.only("project_id", "image", "source"), pk=item_id)
    get_project_for(request.user, item.project_id)
    return image_response(item)


def image_response(item: Item) -> FileResponse:
    """The item's image typed by its content (the pages and the API serve it alike), streamed
    from wherever it lives (labeler.items.sources): the browser never gets a bucket URL."""
    try:
        handle = open_image(item.image.name, item.source)
    except ImageUnavailable as exc:
        raise Http404("Image file missing.") from exc
    kind = detect_type(handle)
    if kind is None:
        handle.close()
        raise Http404("Not a servable image.")
    response = FileResponse(
        handle, content_type=kind.content_type, filename=f"item-{item.pk}.{kind.extension}"
    )
    # Content-addressed files never change: let the browser cache them (private: needs login).
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
