"""Every state change of a background job, one function each (Zulip's ``do_*`` actions).

A job is active while queued, running or delayed; the database keeps at most one active job per
(project, kind) (the ``one_active_job_per_kind`` constraint), so "one run at a time" is one rule
for embedding, retraining, maps and backbone switches alike. One staleness rule too: an active
job whose last sign of life (``heartbeat_at``: queued, progress, a worker's heartbeat) is older
than ``LABELER_JOB_STALE_SECONDS`` is presumed dead, and the next request replaces it.

Reports from workers carry the job's token: a change that names another token, or a job no
longer active, changes nothing (a late or duplicated message from a worker that was presumed
dead). Each action is one conditional UPDATE (or INSERT), atomic on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from labeler.projects.models import Project

from .models import Job

logger = logging.getLogger("labeler.training")

Kind, State = Job.Kind, Job.State
#: Sent when a job is done (``job_id``): webhooks announce it (labeler.webhooks.signals).
job_finished = Signal()


def stale_before(now: datetime | None = None) -> datetime:
    """Active jobs silent since before this moment are presumed dead."""
    return (now or timezone.now()) - timedelta(seconds=settings.LABELER_JOB_STALE_SECONDS)


def is_stale(job: Job, now: datetime | None = None) -> bool:
    return job.active and job.heartbeat_at < stale_before(now)


def active_job(project: Project | int, kind: str) -> Job | None:
    return Job.objects.filter(project=project, kind=kind, status__in=Job.ACTIVE).first()


def _owned(job_id: int, token: str | None):
    qs = Job.objects.filter(pk=job_id, status__in=Job.ACTIVE)
    return qs if token is None else qs.filter(token=token)


def do_start_job(project: Project | int, kind: str, *, params: dict | None = None,
                 cursor: int = 0, total: int = 0, done: int = 0) -> Job | None:
    """Create the (project, kind) job, queued; None when an active one exists that is alive.

    A stale active job is failed first ("lost") and replaced.
    """
    project_id = project if isinstance(project, int) else project.pk
    now = timezone.now()
    current = active_job(project_id, kind)
    if current is not None:
        if not is_stale(current, now):
            return None
        do_fail_job(current, f"lost: no sign of life for more than "
                             f"{settings.LABELER_JOB_STALE_SECONDS} s", token=current.token)
    try:
        with transaction.atomic():
            return Job.objects.create(
                project_id=project_id, kind=kind, status=State.QUEUED, token=uuid.uuid4().hex,
                params=params or {}, cursor=cursor, total=total, done=done, heartbeat_at=now,
            )
    except IntegrityError:  # another request started one in between
        return None


def do_delay_job(job: Job, reason: str) -> bool:
    """The broker refused the job's first message: the sweep queues it when the broker is back."""
    changed = _owned(job.pk, job.token).update(status=State.DELAYED, message=reason[:2000])
    job.status = State.DELAYED if changed else job.status
    return bool(changed)


def do_requeue_job(job: Job) -> bool:
    """A delayed job is queued again (its first message is about to be sent)."""
    changed = Job.objects.filter(pk=job.pk, status=State.DELAYED).update(
        status=State.QUEUED, heartbeat_at=timezone.now(), message="")
    if changed:
        job.status = State.QUEUED
    return bool(changed)


def do_heartbeat(job_id: int, token: str | None, *, done: int | None = None,
                 rate: float | None = None, total: int | None = None,
                 message: str | None = None) -> bool:
    """A sign of life (and progress) from the job's worker; False when it no longer owns it."""
    now = timezone.now()
    fields: dict = {"status": State.RUNNING, "heartbeat_at": now,
                    "started_at": Coalesce(F("started_at"), now)}
    if done is not None:
        fields["done"] = max(0, int(done))
    if rate is not None:
        fields["rate"] = float(rate)
    if total is not None:
        fields["total"] = max(0, int(total))
    if message is not None:
        fields["message"] = message[:2000]
    return bool(_owned(job_id, token).exclude(status=State.DELAYED).update(**fields))


def do_advance_job(job_id: int, token: str, *, cursor: int, done: int,
                   rate: float | None = None) -> bool:
    """A chunk of the job is done: move its cursor (only forward: a duplicated report finds it
    moved already) and set its progress (items up to the cursor)."""
    fields: dict = {"status": State.RUNNING, "heartbeat_at": timezone.now(),
                    "done": max(0, int(done))}
    if rate:
        fields["rate"] = float(rate)
    return bool(_owned(job_id, token).filter(cursor__lt=cursor).update(cursor=cursor, **fields))


def do_finish_job(job_id: int, token: str, *, result: str = "", message: str = "",
                  cursor: int | None = None) -> bool:
    """The job is done. False (and nothing changed) when the token no longer owns it."""
    fields: dict = {"status": State.DONE, "finished_at": timezone.now(), "heartbeat_at":
                    timezone.now(), "result": result, "message": message[:2000]}
    if cursor is not None:
        fields["cursor"] = cursor
    changed = bool(_owned(job_id, token).update(**fields))
    if changed:
        job_finished.send(sender=Job, job_id=job_id)
    return changed


def do_fail_job(job: Job | int, message: str, *, token: str | None = None) -> bool:
    """The job failed (an exception, or presumed dead). With ``token``, only its owner's."""
    job_id = job if isinstance(job, int) else job.pk
    changed = _owned(job_id, token).update(status=State.FAILED, finished_at=timezone.now(),
                                           message=message[:2000])
    if changed:
        logger.warning("job %s failed: %s", job_id, message)
    return bool(changed)


def do_plan_job(job: Job, *, cursor: int, params: dict) -> bool:
    """The web side planned the job's work (what it reads, where results go): recorded on it."""
    changed = _owned(job.pk, job.token).update(cursor=cursor, params={**job.params, **params},
                                               heartbeat_at=timezone.now())
    if changed:
        job.cursor, job.params = cursor, {**job.params, **params}
    return bool(changed)
