"""The periodic sweep: queue the background work that should be queued but is not.

Work goes missing in three ways: the broker refused a request (Redis down: the job is *delayed*),
the broker lost a queued message (Redis restarted without saving), or a worker died mid-task
(its message waits out the broker's visibility timeout). The last two leave an active job that
nobody works on (or, with several chunks in flight, a chunk whose worker died while the
others keep the job alive: it is claimed again and sent to another worker): a job silent for ``LABELER_ORPHAN_SECONDS`` is checked against the queues and
the live workers' tasks, and started again if no one holds it; a job silent for
``LABELER_JOB_STALE_SECONDS`` is presumed dead in any case (labeler.training.actions). `celery
beat` runs :func:`sweep` every ``LABELER_SWEEP_SECONDS`` in a worker, so once the broker is back
the work catches up within about one interval, without anyone's next label or `resume_work`.

It reads the active jobs and one row per project, and queues through the actions of
labeler.training.services, so it is cheap (O(projects + active jobs), never O(items)) and
idempotent: running it twice, or on several schedulers by mistake, queues nothing twice.
"""

from __future__ import annotations

import ast
import logging
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from labeler.celery import app
from labeler.projects.models import Project
from worker.celery_app import GPU_QUEUE, WEB_QUEUE

from .actions import Kind, State, do_fail_job, do_requeue_job, stale_before
from .embedding import embed_next
from .models import EmbedChunk, Job
from .services import launch, request_retrain_if_due, resume_cursor, start

logger = logging.getLogger("labeler.training")

#: Jobs silent this long are checked against the broker's queues and the live workers' tasks.
ORPHAN_AFTER = timedelta(seconds=settings.LABELER_ORPHAN_SECONDS)
#: What the sweep reports, by kind of job.
COUNTED = {Kind.EMBED: "embedding", Kind.SWITCH_BACKBONE: "embedding", Kind.RETRAIN: "retrain",
           Kind.MAP: "map"}
#: Tasks whose first argument is a job id (web tasks) or a job message (GPU tasks).
_BY_ID = {"labeler.training.tasks.embed_next", "labeler.training.tasks.embed_chunk_done",
          "labeler.training.tasks.embed_chunk_alive",
          "labeler.training.tasks.run_retrain", "labeler.training.tasks.retrain_done",
          "labeler.training.tasks.job_progress", "labeler.insights.tasks.run_map",
          "labeler.insights.tasks.map_done"}
_BY_MESSAGE = {"worker.tasks.embed_chunk", "worker.tasks.retrain", "worker.tasks.project_map"}


def _held_or_queued() -> set[int] | None:
    """Ids of the jobs that a live worker holds (running, prefetched or waiting for a retry);
    None when unsure: messages wait in a queue, or the broker or the workers could not be asked.
    A job that no worker holds while the queues are empty is an orphan: its message was lost
    with a restarted broker, or sits unacknowledged by a dead worker."""
    try:
        with app.connection_for_read() as conn:
            client = conn.default_channel.client
            if any(client.llen(queue) for queue in (WEB_QUEUE, GPU_QUEUE)):
                return None
        inspect = app.control.inspect(timeout=1.0)
        replies = [inspect.active(), inspect.reserved(), inspect.scheduled()]
    except Exception:  # not Redis, or the broker went away meanwhile
        logger.warning("sweep: could not inspect the queues and workers", exc_info=True)
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
                if not args:
                    continue
                if task.get("name") in _BY_ID:
                    held.add(int(args[0]))
                elif task.get("name") in _BY_MESSAGE and isinstance(args[0], dict):
                    held.add(int(args[0]["id"]))
    return held


def _again(job: Job, why: str) -> bool:
    """Fail a dead job (unless it moved meanwhile) and start its work again."""
    if not do_fail_job(job, why, token=job.token):
        return False
    logger.warning("sweep: %s job %s of project %s %s: started again", job.kind, job.pk,
                   job.project_id, why)
    if job.kind in (Kind.EMBED, Kind.SWITCH_BACKBONE):
        backbone = job.params.get("backbone", "")
        return start(job.project_id, job.kind, cursor=resume_cursor(job.project_id, backbone),
                     params={"backbone": backbone, "weights": job.params.get("weights", "")})
    if job.kind == Kind.RETRAIN:
        return start(job.project_id, Kind.RETRAIN)
    if job.kind == Kind.MAP:
        return start(job.project_id, Kind.MAP, params={"backbone": job.params.get("backbone")})
    return False


def sweep() -> dict[str, int]:
    """Queue delayed, lost and stalled work of every project. Returns what it queued, by kind."""
    now = timezone.now()
    queued: Counter[str] = Counter(embedding=0, retrain=0)
    suspects: list[Job] = []
    for job in Job.objects.filter(status__in=Job.ACTIVE):
        kind = COUNTED.get(job.kind)
        if kind is None:
            continue
        if job.status == State.DELAYED:
            queued[kind] += do_requeue_job(job) and launch(job)
        elif job.heartbeat_at < stale_before(now):
            queued[kind] += _again(job, "lost: no sign of life")
        elif job.heartbeat_at < now - ORPHAN_AFTER:
            suspects.append(job)
        elif job.chunks.filter(status=EmbedChunk.State.RUNNING,
                               heartbeat_at__lt=stale_before(now)).exists():
            # The job lives (other chunks beat) but a chunk's worker died: give it to another.
            queued[kind] += embed_next(job.pk) in ("dispatched", "busy")
    if suspects:
        held = _held_or_queued()
        for job in suspects if held is not None else []:
            if job.pk not in held:
                queued[COUNTED[job.kind]] += _again(job, "lost: no worker holds it")
    for pk in Project.objects.values_list("pk", flat=True):
        queued["retrain"] += request_retrain_if_due(pk)
    Project.objects.update(work_checked_at=now)
    return dict(queued)


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S %Z")


WAITING = {Kind.EMBED: "embedding", Kind.SWITCH_BACKBONE: "the backbone switch",
           Kind.RETRAIN: "a retrain", Kind.MAP: "the map"}


def delay_notice(project: Project, now: datetime | None = None) -> str | None:
    """Why background work on `project` is late, in a sentence for its pages; None if it isn't."""
    now = now or timezone.now()
    active = list(Job.objects.filter(project=project, status__in=Job.ACTIVE).order_by("id"))
    delayed = [j for j in active if j.status == State.DELAYED]
    if delayed:
        waiting = [WAITING.get(j.kind, j.kind) for j in delayed]
        since = min(j.created_at for j in delayed)
        return (f"Background work is delayed: {' and '.join(waiting)} could not be queued"
                f" since {_when(since)} (the task broker, Redis, is unreachable). Labels are "
                "saved; the work is queued automatically when the broker is back.")
    silent = timedelta(seconds=3 * settings.LABELER_SWEEP_SECONDS + 60)
    if project.work_checked_at is not None and project.work_checked_at < now - silent:
        return (f"Background work is not running: no worker has checked this project since "
                f"{_when(project.work_checked_at)} (is the worker, its scheduler or Redis down?). "
                "Labels are saved; embeddings and retrains catch up when it is back.")
    for job in active:
        if job.heartbeat_at < stale_before(now):
            minutes = int(settings.LABELER_JOB_STALE_SECONDS // 60) or 1
            if job.kind == Kind.RETRAIN:
                return (f"A retrain requested at {_when(job.created_at)} has made no progress "
                        f"for more than {minutes} min; it is requested again automatically.")
            return (f"{WAITING.get(job.kind, job.kind).capitalize()} is delayed: it has made no "
                    f"progress for more than {minutes} min; it is restarted automatically.")
    return None
