"""How the rest of the app announces an event: one signed delivery per subscribed hook."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .models import Delivery, Webhook
from .tasks import deliver

logger = logging.getLogger("labeler.webhooks")


def _send(delivery_id: int) -> None:
    """Queue the delivery; with the broker down it stays pending in the log (never a 500)."""
    try:
        deliver.apply_async(args=[delivery_id], retry=True, retry_policy={"max_retries": 2})
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("could not queue webhook delivery %s", delivery_id)


def emit(project_id: int, event: str, data: dict) -> list[int]:
    """Queue `event` for every active hook of the project that subscribed to it. The tasks are
    sent after the surrounding transaction commits, so a rolled-back change sends nothing."""
    hooks = [h for h in Webhook.objects.filter(project_id=project_id, active=True)
             if event in h.events]
    ids = []
    for hook in hooks:
        delivery = Delivery.objects.create(webhook=hook, event=event, payload={})
        delivery.payload = {
            "event": event, "delivery": delivery.pk, "project": project_id,
            "sent_at": timezone.now().isoformat(), "data": data,
        }
        delivery.save(update_fields=["payload"])
        ids.append(delivery.pk)
        transaction.on_commit(lambda pk=delivery.pk: _send(pk))
    return ids


def redeliver(delivery: Delivery) -> None:
    """Send a failed (or stuck pending) delivery again, with a fresh set of tries."""
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.State.PENDING, attempts=0)
    transaction.on_commit(lambda: _send(delivery.pk))
