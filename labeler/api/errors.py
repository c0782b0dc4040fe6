"""Every API error is JSON with a message: ``{"error": "...", "fields": {...}}``."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler


def _message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return f"{key}: {_message(value)}" if key != "non_field_errors" else _message(value)
        return "Invalid input."
    if isinstance(detail, list):
        return " ".join(_message(d) for d in detail) or "Invalid input."
    return str(detail)


def exception_handler(exc, context):
    """DRF's handler, with a flat `error` message beside the per-field details; a ValueError
    raised by a service (its message is written for the user) is a 400."""
    if isinstance(exc, ValueError) and not isinstance(exc, exceptions.APIException):
        exc = exceptions.ValidationError(str(exc))
    response = drf_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        body = {"error": _message(detail["detail"])}
    elif isinstance(exc, Http404 | PermissionDenied) or not isinstance(detail, dict | list):
        body = {"error": _message(detail)}
    else:
        body = {"error": _message(detail), "fields": detail if isinstance(detail, dict) else {}}
    response.data = body
    return response


def conflict(message: str) -> Response:
    return Response({"error": message}, status=status.HTTP_409_CONFLICT)


def not_found(request, exception=None):
    """Django's 404 handler: JSON under /api/ (e.g. /api/v1/projects/abc/), the page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "No such API URL."}, status=404)
    return page_not_found(request, exception)
