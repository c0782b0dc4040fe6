"""The insights app's web tasks: the embedding map's job (queue ``web``; the projection itself
runs on a GPU worker, worker.tasks.project_map) and export jobs (written here, on the web side)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from labeler.training.actions import do_delay_job, do_finish_job
from labeler.training.models import Job
from labeler.training.services import send
from labeler.training.stores import map_location, store_location

from . import export_jobs

logger = logging.getLogger("labeler.insights")


@shared_task(acks_late=True, ignore_result=True, name="labeler.insights.tasks.run_map")
def run_map(job_id: int) -> str:
    """Send a map job to a GPU worker: where the embeddings are and where the map goes."""
    job = Job.objects.select_related("project").filter(pk=job_id, status__in=Job.ACTIVE).first()
    if job is None:
        return "gone"
    backbone = job.params.get("backbone") or job.project.backbone
    message = {"id": job.pk, "token": job.token, "heartbeat": settings.LABELER_HEARTBEAT_SECONDS,
               "store": store_location(job.project_id, backbone),
               "out": map_location(job.project_id, backbone)}
    if not send("worker.tasks.project_map", message):
        do_delay_job(job, "could not be queued: the task broker (Redis) is unreachable")
        return "delayed"
    return "dispatched"


@shared_task(acks_late=True, ignore_result=True, name="labeler.insights.tasks.map_done")
def map_done(job_id: int, token: str, summary: dict | None) -> bool:
    """The map is stored (the page reads it from storage): the job is done."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return False
    logger.info("map job %s: %s", job_id, summary)
    return do_finish_job(job_id, token,
                         result=map_location(job.project_id, job.params.get("backbone", "")))


@shared_task(acks_late=True, ignore_result=True, name="labeler.insights.tasks.write_export")
def write_export(job_id: int) -> str:
    """Write an export job's file (labeler.insights.export_jobs)."""
    return export_jobs.write(job_id)
