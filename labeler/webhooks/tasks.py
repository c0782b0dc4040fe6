"""The delivery task (web side: it reads the delivery row and writes its outcome)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from labeler.net_safety import FetchError, UnsafeURL, fetch

from .models import Delivery
from .services import SIGNATURE_HEADER, body_of, record_attempt, sign

logger = logging.getLogger("labeler.webhooks")


@shared_task(bind=True, name="labeler.webhooks.tasks.deliver", ignore_result=True,
             max_retries=None)
def deliver(self, delivery_id: int) -> str:
    """POST one delivery; on a non-2xx answer or a network error try again later (waits double
    from LABELER_WEBHOOK_RETRY_SECONDS), LABELER_WEBHOOK_TRIES tries in all. A URL that now
    resolves to a private address fails at once (no retry)."""
    delivery = Delivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Delivery.State.PENDING:
        return "gone"
    hook = delivery.webhook
    body = body_of(delivery)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(hook.secret, body),
        "X-Labeler-Event": delivery.event,
        "X-Labeler-Delivery": str(delivery.pk),
    }
    final = delivery.attempts + 1 >= settings.LABELER_WEBHOOK_TRIES
    try:
        got = fetch(hook.url, method="POST", body=body, headers=headers,
                    timeout=settings.LABELER_WEBHOOK_TIMEOUT, max_bytes=64 * 1024)
    except UnsafeURL as exc:
        record_attempt(delivery, code=None, error=str(exc), final=True)
        return "refused"
    except FetchError as exc:
        record_attempt(delivery, code=None, error=str(exc), final=final)
    else:
        ok = 200 <= got.status < 300
        record_attempt(delivery, code=got.status,
                       error="" if ok else got.body[:500].decode("utf-8", "replace"), final=final)
        if ok:
            return "delivered"
    if final:
        logger.warning("webhook delivery %s failed after %s tries", delivery.pk, delivery.attempts)
        return "failed"
    raise self.retry(countdown=settings.LABELER_WEBHOOK_RETRY_SECONDS * 2 ** (delivery.attempts - 1))
