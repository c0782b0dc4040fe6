"""Requests for background work: embedding and retraining, each guarded so that at most one
of each runs per project.

The guard is a timestamp on the project set by a conditional UPDATE (atomic on every database):
only the request that flips it enqueues a task. A stale guard (a worker killed hard) expires.
A request the broker refused is marked on the project (embed_status "delayed", retrain_delayed)
and queued by the periodic sweep (labeler.training.sweep) once the broker is back.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeler.annotations.models import Annotation
from labeler.items.models import Item
from labeler.projects.models import Project

logger = logging.getLogger("labeler.training")

RETRAIN_GUARD = timedelta(seconds=settings.LABELER_RETRAIN_GUARD_SECONDS)
EMBED_GUARD = timedelta(minutes=45)  # longer than one chunk; refreshed by each chunk
# An embedding chain silent this long (no batch stored, no chunk started) is presumed dead.
EMBED_STALE = timedelta(seconds=settings.LABELER_EMBED_STALE_SECONDS)


def _enqueue(task, *args) -> bool:
    """Send a task; if the broker is down, log it and say so instead of failing the request."""
    try:
        task.apply_async(args=args, retry=True, retry_policy={"max_retries": 2})
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("could not enqueue %s%s: is Redis running?", task.name, args)
        return False
    return True


def request_embedding(project: Project | int, *, force: bool = False) -> bool:
    """Enqueue the embedding task unless one is already queued or running for this project."""
    from worker.tasks import embed_project

    project_id = project if isinstance(project, int) else project.pk
    now = timezone.now()
    qs = Project.objects.filter(pk=project_id)
    if not force:
        qs = qs.filter(Q(embed_requested_at__isnull=True) | Q(embed_requested_at__lt=now - EMBED_GUARD))
    if not qs.update(embed_requested_at=now, embed_status="queued"):
        return False
    if not _enqueue(embed_project, project_id):
        # Not lost: the sweep queues it when the broker is back; the pages say it waits.
        Project.objects.filter(pk=project_id).update(
            embed_requested_at=None, embed_status="delayed",
            delayed_since=Coalesce("delayed_since", now),
        )
        return False
    logger.info("embedding queued for project %s", project_id)
    return True


def request_retrain(project: Project | int) -> bool:
    """Enqueue a retrain unless one is queued or running. Returns True if one was queued."""
    from worker.tasks import retrain_project

    project_id = project if isinstance(project, int) else project.pk
    now = timezone.now()
    updated = Project.objects.filter(
        Q(retrain_requested_at__isnull=True) | Q(retrain_requested_at__lt=now - RETRAIN_GUARD),
        pk=project_id,
    ).update(retrain_requested_at=now, retrain_delayed=False)
    if not updated:
        return False
    if not _enqueue(retrain_project, project_id):
        # The guard is released (the next label may try again) and the sweep retries it.
        Project.objects.filter(pk=project_id).update(
            retrain_requested_at=None, retrain_delayed=True,
            delayed_since=Coalesce("delayed_since", now),
        )
        return False
    logger.info("retrain queued for project %s", project_id)
    return True


def request_retrain_if_due(project: Project | int) -> bool:
    """Retrain after every `retrain_every` new labels (and for the first model, at that count).

    New labels are annotations saved since the last retrain read its labels. This runs after
    every saved label, so it counts at most `retrain_every` of them, whatever the project's size.
    """
    project_id = project if isinstance(project, int) else project.pk
    with connection.cursor() as cursor:
        # "Guarded": a retrain was requested recently and is queued or running.
        since = connection.ops.adapt_datetimefield_value(timezone.now() - RETRAIN_GUARD)
        cursor.execute(
            f"SELECT retrain_every, retrain_mark,"
            " retrain_requested_at IS NOT NULL AND retrain_requested_at > %s"
            f" FROM {Project._meta.db_table} WHERE id = %s",
            [since, project_id],
        )
        row = cursor.fetchone()
        if row is None or row[2]:
            return False
        every, mark = max(1, row[0]), row[1]
        cursor.execute(
            # Items, not rows: one visit answers every label set, one row per set.
            f"SELECT COUNT(*) FROM (SELECT DISTINCT a.item_id FROM {Annotation._meta.db_table} a"
            f" JOIN {Item._meta.db_table} i ON i.id = a.item_id"
            " WHERE a.id > %s AND i.project_id = %s LIMIT %s) AS new_labels",
            [mark, project_id, every],
        )
        new_labels = cursor.fetchone()[0]
    if new_labels >= every:
        return request_retrain(project_id)
    return False
