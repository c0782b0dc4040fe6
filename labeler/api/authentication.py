"""``Authorization: Bearer <token>`` for the API, with failures rate-limited per address."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from .tokens import find_token

logger = logging.getLogger("labeler.api")


def client_address(request) -> str:
    # REMOTE_ADDR only: a forwarded-for header is the client's to forge, and a proxy that
    # rewrites REMOTE_ADDR is the deployment's business (as for the login throttle).
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _failures_key(request) -> str:
    return f"labeler:api-auth-failures:{client_address(request)}"


def _failures(key: str) -> int:
    try:
        return int(cache.get(key, 0))
    except Exception:  # a shared cache (LABELER_CACHE_URL) that is down: not a 500
        logger.exception("could not read failed token attempts")
        return 0


class BearerTokenAuthentication(BaseAuthentication):
    """A personal token (labeler.api.tokens). A bad token is a 401, never a silent anonymous
    request; after LABELER_API_AUTH_FAILURES bad tokens from one address within
    LABELER_API_AUTH_WINDOW seconds that address gets 429 until the window ends (even with a
    good token, so guessing can't go on between good requests)."""

    keyword = "Bearer"

    def authenticate(self, request: Request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        key = _failures_key(request)
        if _failures(key) >= settings.LABELER_API_AUTH_FAILURES:
            raise exceptions.Throttled(
                wait=settings.LABELER_API_AUTH_WINDOW,
                detail="Too many failed token attempts from this address; try again later.",
            )
        if len(header) != 2:
            self._failed(key)
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
        try:
            token_text = header[1].decode("ascii")
        except UnicodeDecodeError:
            token_text = ""
        token = find_token(token_text) if token_text else None
        if token is None:
            self._failed(key)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return token.user, token

    @staticmethod
    def _failed(key: str) -> None:
        window = settings.LABELER_API_AUTH_WINDOW
        try:
            if not cache.add(key, 1, window):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.add(key, 1, window)
        except Exception:  # a shared cache (LABELER_CACHE_URL) that is down: not a 500
            logger.exception("could not count a failed token attempt")

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
