"""The training app's web tasks (queue ``web``): they own the database side of every job.

GPU workers (worker.tasks) send their reports here by name; each task is thin and calls the
module that holds the logic (embedding, retrain, checks, sweep). Every report carries the job's
token, so a late or duplicated one changes nothing.
"""

from __future__ import annotations

import logging

from celery import shared_task

from labeler.projects.models import Project

from . import checks, chunks, embedding, retrain
from .actions import do_fail_job, do_heartbeat
from .checks import request_check_if_due
from .models import Job
from .services import request_retrain_if_due
from .sweep import sweep as run_sweep

logger = logging.getLogger("labeler.training")

WEB = {"acks_late": True, "ignore_result": True}


@shared_task(name="labeler.training.tasks.embed_next", **WEB)
def embed_next(job_id: int) -> str:
    """Send an embedding job's next chunk to a GPU worker (or finish the job)."""
    return embedding.embed_next(job_id)


@shared_task(name="labeler.training.tasks.embed_chunk_done", **WEB)
def embed_chunk_done(job_id: int, token: str, report: dict) -> str:
    return embedding.chunk_done(job_id, token, report)


@shared_task(name="labeler.training.tasks.embed_chunk_alive", **WEB)
def embed_chunk_alive(job_id: int, token: str, chunk_id: int, chunk_token: str,
                      worker: str, done: int | None = None, rate: float | None = None) -> bool:
    """A GPU worker still holds this chunk (and so the job is alive), with its progress."""
    return chunks.alive(job_id, token, chunk_id, chunk_token, worker, done, rate)


@shared_task(name="labeler.training.tasks.run_retrain", **WEB)
def run_retrain(job_id: int) -> str:
    """Plan a retrain job (current labels, version number, locations) and send it to a worker."""
    return retrain.run_retrain(job_id)


@shared_task(name="labeler.training.tasks.retrain_done", **WEB)
def retrain_done(job_id: int, token: str, report: dict) -> dict | None:
    """Ingest a retrain's results, then queue what they call for."""
    result = retrain.ingest(job_id, token, report)
    project_id = Job.objects.filter(pk=job_id).values_list("project_id", flat=True).first()
    if project_id is not None:
        # Labels that arrived while training ran may already call for the next version.
        request_retrain_if_due(project_id)
        if result is not None:  # enough labels for a (new) backbone check?
            request_check_if_due(Project.objects.get(pk=project_id))
    return result


@shared_task(name="labeler.training.tasks.job_progress", **WEB)
def job_progress(job_id: int, token: str, done: int | None, rate: float | None) -> bool:
    """A worker's heartbeat, with progress when it has some."""
    return do_heartbeat(job_id, token, done=done, rate=rate)


@shared_task(name="labeler.training.tasks.job_failed", **WEB)
def job_failed(job_id: int, token: str, message: str) -> bool:
    return do_fail_job(job_id, message, token=token)


@shared_task(name="labeler.training.tasks.run_check", **WEB)
def run_check(check_id: int) -> str:
    return checks.run_check(check_id)


@shared_task(name="labeler.training.tasks.check_progress", **WEB)
def check_progress(check_id: int, done: int, total: int, stage: str) -> None:
    checks.check_progress(check_id, done, total, stage)


@shared_task(name="labeler.training.tasks.check_done", **WEB)
def check_done(check_id: int, result: dict | None, error: str) -> None:
    checks.check_done(check_id, result, error)


@shared_task(name="labeler.training.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Queue background work that a broker outage or a dead worker left unqueued."""
    queued = run_sweep()
    if any(queued.values()):
        logger.info("sweep queued %s", queued)
    return queued
