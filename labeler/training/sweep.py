"""The periodic sweep: queue the background work that should be queued but is not.

Work goes missing in three ways: the broker refused a request (Redis down: the request is marked
"delayed" on the project), the broker lost a queued message (Redis restarted without saving), or
a worker died mid-task (its message waits out the broker's visibility timeout). `celery beat`
runs :func:`sweep` every ``LABELER_SWEEP_SECONDS`` in a worker, so once the broker is back the
work catches up within about one interval, without anyone's next label or `resume_work`.

It reads one row per project and queues through the guarded requests of
:mod:`labeler.training.services`, so it is cheap (O(projects), never O(items)) and idempotent:
running it twice, or on several schedulers by mistake, queues nothing twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from labeler.projects.models import Project

from .services import (
    EMBED_STALE,
    RETRAIN_GUARD,
    request_embedding,
    request_retrain,
    request_retrain_if_due,
)


def _embedding_stale(requested: datetime | None, updated: datetime | None, now: datetime) -> bool:
    """An embedding is requested and its chain has shown no sign of life for EMBED_STALE."""
    if requested is None:
        return False
    last = max(requested, updated) if updated else requested
    return last < now - EMBED_STALE


def sweep() -> dict[str, int]:
    """Queue delayed, lost and stalled work of every project. Returns what it queued."""
    now = timezone.now()
    queued: Counter[str] = Counter()
    rows = Project.objects.values_list(
        "pk", "embed_status", "embed_requested_at", "embed_updated_at",
        "retrain_requested_at", "retrain_delayed",
    )
    for pk, status, embed_at, embed_updated, retrain_at, retrain_delayed in rows:
        if status == "delayed":
            queued["embedding"] += request_embedding(pk)
        elif _embedding_stale(embed_at, embed_updated, now):
            # The new chain takes over: the dead one's token is stale (see embed_project).
            queued["embedding"] += request_embedding(pk, force=True)
        if retrain_delayed or (retrain_at is not None and retrain_at < now - RETRAIN_GUARD):
            queued["retrain"] += request_retrain(pk)
        else:
            queued["retrain"] += request_retrain_if_due(pk)
    Project.objects.update(work_checked_at=now)
    Project.objects.filter(delayed_since__isnull=False, retrain_delayed=False).exclude(
        embed_status="delayed"
    ).update(delayed_since=None)
    return dict(queued)


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S %Z")


def delay_notice(project: Project, now: datetime | None = None) -> str | None:
    """Why background work on `project` is late, in a sentence for its pages; None if it isn't."""
    now = now or timezone.now()
    waiting = [w for w, late in (("embedding", project.embed_status == "delayed"),
                                 ("a retrain", project.retrain_delayed)) if late]
    if waiting:
        since = f" since {_when(project.delayed_since)}" if project.delayed_since else ""
        return (f"Background work is delayed: {' and '.join(waiting)} could not be queued"
                f"{since} (the task broker, Redis, is unreachable). Labels are saved; the work "
                "is queued automatically when the broker is back.")
    silent = timedelta(seconds=3 * settings.LABELER_SWEEP_SECONDS + 60)
    if project.work_checked_at is not None and project.work_checked_at < now - silent:
        return (f"Background work is not running: no worker has checked this project since "
                f"{_when(project.work_checked_at)} (is the worker, its scheduler or Redis down?). "
                "Labels are saved; embeddings and retrains catch up when it is back.")
    if _embedding_stale(project.embed_requested_at, project.embed_updated_at, now):
        return ("Embedding is delayed: it has made no progress for more than "
                f"{int(EMBED_STALE.total_seconds() // 60) or 1} min; it is restarted automatically.")
    if project.retrain_requested_at is not None and (
        project.retrain_requested_at < now - RETRAIN_GUARD
    ):
        return (f"A retrain requested at {_when(project.retrain_requested_at)} has not finished; "
                "it is requested again automatically.")
    return None
