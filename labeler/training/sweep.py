"""The periodic sweep: queue the background work that should be queued but is not.

Work goes missing in three ways: the broker refused a request (Redis down: the request is marked
"delayed" on the project), the broker lost a queued message (Redis restarted without saving), or
a worker died mid-task (its message waits out the broker's visibility timeout). The last two
leave a guard that nobody holds: a guard older than ``LABELER_ORPHAN_SECONDS`` is checked
against the queue and the live workers' tasks, and queued again if it is an orphan. `celery beat`
runs :func:`sweep` every ``LABELER_SWEEP_SECONDS`` in a worker, so once the broker is back the
work catches up within about one interval, without anyone's next label or `resume_work`.

It reads one row per project and queues through the guarded requests of
:mod:`labeler.training.services`, so it is cheap (O(projects), never O(items)) and idempotent:
running it twice, or on several schedulers by mistake, queues nothing twice.
"""

from __future__ import annotations

import ast
import logging
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

logger = logging.getLogger("labeler.training")


#: Guards this old are checked against the broker's queue and the live workers' tasks.
ORPHAN_AFTER = timedelta(seconds=settings.LABELER_ORPHAN_SECONDS)
KINDS = {"worker.tasks.embed_project": "embedding", "worker.tasks.retrain_project": "retrain"}


def _embedding_stale(requested: datetime | None, updated: datetime | None, now: datetime) -> bool:
    """An embedding is requested and its chain has shown no sign of life for EMBED_STALE."""
    if requested is None:
        return False
    return _last_sign(requested, updated) < now - EMBED_STALE


def _last_sign(requested: datetime, updated: datetime | None) -> datetime:
    return max(requested, updated) if updated else requested


def _held_or_queued() -> set[tuple[int, str]] | None:
    """(project id, kind) of every embedding or retrain that a live worker holds (running,
    prefetched or waiting for a retry); None when unsure: messages wait in the queue, or the broker or the workers
    could not be asked. A guard that no worker holds while the queue is empty is an orphan: its
    message was lost with a restarted broker, or sits unacknowledged by a dead worker."""
    from worker.celery_app import app

    try:
        with app.connection_for_read() as conn:
            if conn.default_channel.client.llen(settings.CELERY_TASK_DEFAULT_QUEUE):
                return None
        inspect = app.control.inspect(timeout=1.0)
        replies = [inspect.active(), inspect.reserved(), inspect.scheduled()]
    except Exception:  # not Redis, or the broker went away meanwhile
        logger.warning("sweep: could not inspect the queue and workers", exc_info=True)
        return None
    if not all(replies):
        return None  # no worker answered: the sweep itself runs in one, so something is off
    held = set()
    for reply in replies:
        for tasks in reply.values():
            for entry in tasks:
                task = entry.get("request", entry)  # scheduled (retry countdown) entries wrap it
                args = task.get("args")
                if isinstance(args, str):
                    args = ast.literal_eval(args)
                if task.get("name") in KINDS and args:
                    held.add((int(args[0]), KINDS[task["name"]]))
    return held


def _requeue(pk: int, kind: str, guard: datetime) -> bool:
    """Release a dead guard (unless someone renewed it meanwhile) and request the work again."""
    if kind == "embedding":
        released = Project.objects.filter(pk=pk, embed_requested_at=guard).update(
            embed_requested_at=None, embed_token=""
        )
        return bool(released) and request_embedding(pk)
    released = Project.objects.filter(pk=pk, retrain_requested_at=guard).update(
        retrain_requested_at=None
    )
    return bool(released) and request_retrain(pk)


def sweep() -> dict[str, int]:
    """Queue delayed, lost and stalled work of every project. Returns what it queued."""
    now = timezone.now()
    queued: Counter[str] = Counter(embedding=0, retrain=0)
    suspects: list[tuple[int, str, datetime]] = []
    rows = Project.objects.values_list(
        "pk", "embed_status", "embed_requested_at", "embed_updated_at",
        "retrain_requested_at", "retrain_delayed",
    )
    for pk, status, embed_at, embed_updated, retrain_at, retrain_delayed in rows:
        if status == "delayed":
            queued["embedding"] += request_embedding(pk)
        elif _embedding_stale(embed_at, embed_updated, now):
            queued["embedding"] += _requeue(pk, "embedding", embed_at)
        elif embed_at is not None and _last_sign(embed_at, embed_updated) < now - ORPHAN_AFTER:
            suspects.append((pk, "embedding", embed_at))
        if retrain_delayed:
            queued["retrain"] += request_retrain(pk)
        elif retrain_at is not None and retrain_at < now - RETRAIN_GUARD:
            queued["retrain"] += _requeue(pk, "retrain", retrain_at)
        elif retrain_at is not None and retrain_at < now - ORPHAN_AFTER:
            suspects.append((pk, "retrain", retrain_at))
        else:
            queued["retrain"] += request_retrain_if_due(pk)
    if suspects:
        held = _held_or_queued()
        for pk, kind, guard in suspects if held is not None else []:
            if (pk, kind) not in held:
                logger.warning("sweep: %s of project %s was lost (no worker holds it): "
                               "queued again", kind, pk)
                queued[kind] += _requeue(pk, kind, guard)
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
