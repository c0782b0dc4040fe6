"""State changes of webhooks and deliveries, one function each (events are sent by
labeler.webhooks.events.emit)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from labeler.net_safety import check_url
from labeler.projects.models import Project

from .models import Delivery, Event, Webhook

SIGNATURE_HEADER = "X-Labeler-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _checked(url: str, events: Sequence[str]) -> tuple[str, list[str]]:
    unknown = sorted(set(events) - set(Event.values))
    if unknown:
        raise ValueError(f"Unknown events {unknown}; choose from {Event.values}.")
    if not events:
        raise ValueError("Choose at least one event.")
    check_url(url)  # UnsafeURL (a ValueError): private addresses are refused up front
    return url, sorted(set(events))


def create_webhook(project: Project, url: str, events: Sequence[str], *, secret: str = "",
                   user: AbstractBaseUser | None = None) -> Webhook:
    url, events = _checked(url, events)
    return Webhook.objects.create(
        project=project, url=url, events=events, secret=secret or secrets.token_urlsafe(32),
        created_by=user,
    )


def update_webhook(hook: Webhook, **fields) -> Webhook:
    if "url" in fields or "events" in fields:  # (pausing needs no DNS lookup)
        hook.url, hook.events = _checked(fields.get("url", hook.url),
                                         fields.get("events", hook.events))
    if "active" in fields:
        hook.active = bool(fields["active"])
    if fields.get("secret"):
        hook.secret = fields["secret"]
    hook.save()
    return hook


def body_of(delivery: Delivery) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys sorted."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()


def record_attempt(delivery: Delivery, *, code: int | None, error: str, final: bool) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = timezone.now()
    delivery.response_code = code
    delivery.error = error[:2000]
    if code is not None and 200 <= code < 300:
        delivery.status, delivery.delivered_at = Delivery.State.DELIVERED, timezone.now()
    elif final:
        delivery.status = Delivery.State.FAILED
    delivery.save()
