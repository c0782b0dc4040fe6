"""A renderer for views that answer with a file, so that any Accept header is served (errors
from such a view are still JSON)."""

from __future__ import annotations

import json

from rest_framework.renderers import BaseRenderer


class BinaryRenderer(BaseRenderer):
    media_type = "*/*"
    format = "binary"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if renderer_context and renderer_context.get("response") is not None:
            renderer_context["response"]["Content-Type"] = "application/json"
        return json.dumps(data).encode() if data is not None else b""
