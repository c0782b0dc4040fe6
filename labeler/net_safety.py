"""The SSRF guard (worker.net_safety, one implementation for the web side and the GPU workers)
with the web side's setting: ``settings.LABELER_ALLOW_PRIVATE_URLS``, read at each call."""

from __future__ import annotations

from django.conf import settings

from worker import net_safety as guard
from worker.net_safety import REDIRECTS, Fetched, FetchError, Target, UnsafeURL, is_public

__all__ = ["REDIRECTS", "Fetched", "FetchError", "Target", "UnsafeURL", "check_url", "fetch",
           "is_public"]


def _allow(allow_private: bool | None) -> bool:
    return settings.LABELER_ALLOW_PRIVATE_URLS if allow_private is None else allow_private


def check_url(url: str, *, allow_private: bool | None = None) -> Target:
    """worker.net_safety.check_url under the web side's setting."""
    return guard.check_url(url, allow_private=_allow(allow_private))


def fetch(url: str, *, allow_private: bool | None = None, **options) -> Fetched:
    """worker.net_safety.fetch under the web side's setting."""
    return guard.fetch(url, allow_private=_allow(allow_private), **options)
