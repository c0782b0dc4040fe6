"""A database that is down (restarting, failing over) answers 503 with a message, not a 500.

Django turns an exception anywhere in a request (view or middleware, e.g. loading the session)
into a call of the 500 handler while the exception is being handled; this handler tells a lost
database connection apart from a bug. The label API is idempotent by client_id, so a client that
retries after a 503 never saves a label twice.
"""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views import defaults

logger = logging.getLogger("labeler.outages")

MESSAGE = "The database is unavailable at the moment. Please try again in a few seconds."
RETRY_AFTER = "5"


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: 503 for a database outage (JSON for the API), Django's plain 500 otherwise."""
    exc = sys.exc_info()[1]
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return defaults.server_error(request)
    logger.warning("database unavailable during %s %s: %s", request.method, request.path, exc)
    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse({"error": MESSAGE}, status=503)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Unavailable</title><h1>Temporarily unavailable</h1>"
            f"<p>{escape(MESSAGE)}</p>", status=503,
        )
    response["Retry-After"] = RETRY_AFTER
    return response
