"""Embedding jobs on the web side: cut the project into chunks by item id, send each to a GPU
worker (worker.tasks.embed_chunk), take its report, and chain what follows the last one.

Chunks are cut by a cursor (the job's ``cursor``: the highest item id whose chunk is done): one
indexed range read of at most ``LABELER_EMBED_CHUNK`` rows per chunk, never a listing of the
whole project, so embedding n new items costs O(n) whatever the project's size. A new job starts
where the last one with the same backbone stopped; items imported meanwhile have higher ids, so
the cursor reaches them. One chunk of a job is in flight at a time; a worker killed mid-chunk
costs that chunk (its message is redelivered, and what it had stored is skipped).
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.db import transaction

from labeler.items.models import Item
from labeler.projects.models import Project
from worker import compute

from .actions import (
    Kind,
    active_job,
    do_advance_job,
    do_delay_job,
    do_fail_job,
    do_finish_job,
    do_heartbeat,
    do_start_job,
)
from .ingest import store_embed_errors
from .models import Job, ModelVersion
from .services import (
    request_embedding,
    request_retrain,
    request_retrain_if_due,
    resume_cursor,
    send,
)
from .stores import image_location, store_for, store_location

logger = logging.getLogger("labeler.training")


def _owned(job_id: int, token: str | None = None) -> Job | None:
    qs = Job.objects.select_related("project").filter(pk=job_id, status__in=Job.ACTIVE)
    return (qs if token is None else qs.filter(token=token)).first()


def next_chunk(job_id: int) -> tuple[dict, dict] | str:
    """Plan the job's next chunk: ``(message, chunk)`` for a GPU worker (worker.tasks.embed_chunk),
    or, when no chunk is left, finish the job and say how it ended."""
    job = _owned(job_id)
    if job is None:
        return "gone"
    project = job.project
    backbone = job.params.get("backbone", project.backbone)
    if job.kind == Kind.EMBED and backbone != project.backbone:
        # The project switched backbones meanwhile: embed with the new one instead.
        do_fail_job(job, f"cancelled: the project now uses {project.backbone}", token=job.token)
        request_embedding(project)
        return "restarted"
    items = Item.objects.filter(project=project, embed_error="")
    if not job.total:  # the first step: how much there is (two counts, once per job)
        job.total = items.count()
        job.done = items.filter(pk__lte=job.cursor).count() if job.cursor else 0
        do_heartbeat(job.pk, job.token, total=job.total, done=job.done,
                     message=f"switching to {backbone}" if job.kind == Kind.SWITCH_BACKBONE
                     else "")
    have = store_for(project.pk, backbone).ids()
    cursor = job.cursor
    while True:
        rows = list(items.filter(pk__gt=cursor).order_by("pk")
                    .values_list("pk", "image", "source")[: max(1, settings.LABELER_EMBED_CHUNK)])
        if not rows:
            break
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        todo = np.flatnonzero(~np.isin(ids, have))
        last = int(ids[-1])
        if len(todo):
            logger.info("embed project=%s backbone=%s: %d to embed, %d already stored",
                        project.pk, backbone, len(todo), len(rows) - len(todo))
            message = {
                "id": job.pk, "token": job.token, "project": project.pk, "backbone": backbone,
                "weights": job.params.get("weights", ""),
                "store": store_location(project.pk, backbone),
                "batch_size": settings.LABELER_EMBED_BATCH_SIZE,
            }
            chunk = {"ids": ids[todo].tolist(),
                     "images": [image_location(*rows[i][1:]) for i in todo.tolist()],
                     "last_id": last, "done_before": job.done + len(rows) - len(todo)}
            return message, chunk
        # Every item of this range is embedded already (a rescan, a crash after the store).
        job.done += len(rows)
        if not do_advance_job(job.pk, job.token, cursor=last, done=job.done):
            return "gone"
        cursor = last
    return finish(job)


def embed_next(job_id: int) -> str:
    """Send the job's next chunk to a GPU worker, or finish the job when none is left."""
    planned = next_chunk(job_id)
    if isinstance(planned, str):
        return planned
    message, chunk = planned
    if not send("worker.tasks.embed_chunk", message, chunk):
        job = _owned(job_id)
        if job is not None:
            do_delay_job(job, "could not be queued: the task broker (Redis) is unreachable")
        return "delayed"
    do_heartbeat(job_id, message["token"])
    return "dispatched"


def record_chunk(job_id: int, token: str, report: dict) -> bool:
    """A worker embedded a chunk: record its failed images and move the cursor past it.

    False for a duplicate report (a redelivered chunk finds the cursor already past it) or one
    from a worker that no longer owns the job: nothing changes.
    """
    job = _owned(job_id, token)
    if job is None or job.cursor >= int(report["last_id"]):
        return False
    errors = {int(k): v for k, v in (report.get("errors") or {}).items()}
    if errors:
        store_embed_errors(errors)
    return do_advance_job(job_id, token, cursor=int(report["last_id"]), done=int(report["done"]),
                          rate=report.get("rate"))


def chunk_done(job_id: int, token: str, report: dict) -> str:
    """A chunk's report: record it, then send the next chunk."""
    return embed_next(job_id) if record_chunk(job_id, token, report) else "ignored"


def embed_now(project: Project, kind: str = Kind.EMBED) -> dict:
    """Run the project's embedding (or backbone switch) job to its end in this process (tests,
    scripts): the same plan, compute and ingest as through the queues. Takes over the active
    job of that kind, or starts one."""
    job = active_job(project, kind)
    if job is None:
        if kind == Kind.SWITCH_BACKBONE:
            raise ValueError("no backbone switch to run")
        job = do_start_job(project, kind, cursor=resume_cursor(project.pk, project.backbone),
                           params={"backbone": project.backbone,
                                   "weights": project.backbone_weights})
    embedded = errors = 0
    while True:
        planned = next_chunk(job.pk)
        if isinstance(planned, str):
            return {"embedded": embedded, "errors": errors, "ended": planned,
                    "swapped": planned == "done" and kind == Kind.SWITCH_BACKBONE}
        message, chunk = planned
        result = compute.embed_items(message["store"], message["backbone"], chunk["ids"],
                                     chunk["images"], weights=message["weights"],
                                     batch_size=message["batch_size"])
        embedded, errors = embedded + result["embedded"], errors + len(result["errors"])
        record_chunk(job.pk, job.token, {
            "last_id": chunk["last_id"], "done": chunk["done_before"] + len(chunk["ids"]),
            "rate": result["rate"], "errors": result["errors"]})


def finish(job: Job) -> str:
    """No chunk left: finish the job and chain what follows (a swap, a retrain)."""
    project = job.project
    swapped = False
    if job.kind == Kind.SWITCH_BACKBONE:
        with transaction.atomic():
            if not do_finish_job(job.pk, job.token, message=""):
                return "gone"
            Project.objects.filter(pk=project.pk).update(
                backbone=job.params["backbone"], backbone_weights=job.params.get("weights", ""))
        swapped = True
        logger.info("project=%s now uses backbone %s", project.pk, job.params["backbone"])
    elif not do_finish_job(job.pk, job.token):
        return "gone"
    project.refresh_from_db()
    # Items imported after the last chunk was cut were refused a job of their own: pick them up.
    if Item.objects.filter(project=project, embed_error="", pk__gt=job.cursor).exists() or swapped:
        request_embedding(project)
    retrain_after_embedding(project, swapped)
    return "done"


def retrain_after_embedding(project: Project, swapped: bool) -> bool:
    """Once a project is embedded, retrain if the current model missed labels for want of
    embeddings (labels given while embedding ran: the retrain they triggered could use only the
    items embedded by then), or if the backbone changed. Without labels, the retrain ranks the
    pool by the strategy's cold start, so that the very first items served are chosen, not
    random. Otherwise retrain only if due."""
    labeled = project.items.filter(annotation_count__gt=0).count()
    latest = ModelVersion.objects.latest_ready(project)
    if not labeled or swapped or latest is None or latest.labels_used < labeled:
        return request_retrain(project)
    return request_retrain_if_due(project)
