"""Embedding jobs on the web side: cut the project into chunks by item id, send each to a GPU
worker (worker.tasks.embed_chunk), take its report, and chain what follows the last one.

Chunks are cut by a cursor: one indexed range read of at most ``LABELER_EMBED_CHUNK`` rows per
chunk, never a listing of the whole project, so embedding n new items costs O(n) whatever the
project's size. A new job starts where the last one with the same backbone stopped (its
``cursor``); items imported meanwhile have higher ids, so the cursor reaches them. Up to
``LABELER_EMBED_PARALLEL`` chunks of a job are in flight at once, on as many GPU workers, each
claimed with its own owner token (labeler.training.chunks); a worker killed mid-chunk costs that
chunk, which another worker redoes once it is found silent, into the same store object.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from labeler.items.models import Item
from labeler.projects.models import Project
from worker import compute

from . import chunks
from .actions import (
    Kind,
    active_job,
    do_delay_job,
    do_fail_job,
    do_finish_job,
    do_heartbeat,
    do_start_job,
)
from .models import EmbedChunk, Job, ModelVersion
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
    """Claim the job's next chunk (labeler.training.chunks): ``(message, chunk)`` for a GPU
    worker (worker.tasks.embed_chunk); "busy" when enough chunks are in flight; when every
    chunk is done, finish the job and say how it ended."""
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
    if not job.total:  # the first step: how much there is (two counts, once per job)
        items = Item.objects.filter(project=project, embed_error="")
        job.total = items.count()
        job.done = items.filter(pk__lte=job.cursor).count() if job.cursor else 0
        do_heartbeat(job.pk, job.token, total=job.total, done=job.done,
                     message=f"switching to {backbone}" if job.kind == Kind.SWITCH_BACKBONE
                     else "")
    claimed = chunks.claim(job, store_for(project.pk, backbone).ids())
    if claimed == "empty":
        return finish(job)
    if isinstance(claimed, str):
        return claimed
    logger.info("embed project=%s backbone=%s: chunk (%s, %s], %d to embed (claim %d)",
                project.pk, backbone, claimed.after, claimed.last_id, len(claimed.ids),
                claimed.claims)
    message = {
        "id": job.pk, "token": job.token, "project": project.pk, "backbone": backbone,
        "weights": job.params.get("weights", ""), "store": store_location(project.pk, backbone),
        "batch_size": settings.LABELER_EMBED_BATCH_SIZE,
        "heartbeat": settings.LABELER_HEARTBEAT_SECONDS,
    }
    chunk = {"chunk": claimed.pk, "token": claimed.token, "name": claimed.name,
             "ids": list(claimed.ids), "last_id": claimed.last_id,
             "images": [image_location(*row) for row in chunks.images_of(claimed)]}
    return message, chunk


def embed_next(job_id: int) -> str:
    """Send the job's next chunks to GPU workers (up to the in-flight limit), or finish the job
    when none is left."""
    sent = 0
    while True:
        planned = next_chunk(job_id)
        if isinstance(planned, str):
            return "dispatched" if sent and planned == "busy" else planned
        message, chunk = planned
        if not send("worker.tasks.embed_chunk", message, chunk):
            chunks.unsent(EmbedChunk(pk=chunk["chunk"], token=chunk["token"]))
            job = _owned(job_id)
            if job is not None:
                do_delay_job(job, "could not be queued: the task broker (Redis) is unreachable")
            return "delayed"
        do_heartbeat(job_id, message["token"])
        sent += 1


def record_chunk(job_id: int, token: str, report: dict) -> bool:
    """A worker embedded a chunk: see labeler.training.chunks.record (False: nothing changed)."""
    return chunks.record(job_id, token, report)


def chunk_done(job_id: int, token: str, report: dict) -> str:
    """A chunk's report: record it, then send the next chunks."""
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
        result = compute.embed_chunk(message["store"], message["backbone"], chunk["name"],
                                     chunk["ids"], chunk["images"], weights=message["weights"],
                                     batch_size=message["batch_size"])
        embedded, errors = embedded + result["embedded"], errors + len(result["errors"])
        record_chunk(job.pk, job.token, {
            "chunk": chunk["chunk"], "chunk_token": chunk["token"], "worker": "in-process",
            "rate": result["rate"], "errors": result["errors"]})


def finish(job: Job) -> str:
    """No chunk left: finish the job and chain what follows (a swap, a retrain)."""
    project = job.project
    swapped = False
    end = max(job.cursor, _last_chunk(job))
    if job.kind == Kind.SWITCH_BACKBONE:
        with transaction.atomic():
            if not do_finish_job(job.pk, job.token, message="", cursor=end):
                return "gone"
            Project.objects.filter(pk=project.pk).update(
                backbone=job.params["backbone"], backbone_weights=job.params.get("weights", ""))
        swapped = True
        logger.info("project=%s now uses backbone %s", project.pk, job.params["backbone"])
    elif not do_finish_job(job.pk, job.token, cursor=end):
        return "gone"
    # Merge the chunks into one base (one read for a retrain). Only this step compacts a store
    # (GPU workers never do): it runs once per job, for the one caller whose finish counted.
    try:
        store_for(project.pk, job.params.get("backbone", project.backbone)).compact()
    except Exception:  # the chunks stay readable as they are; the next job's finish merges them
        logger.exception("project=%s: compacting the embeddings failed", project.pk)
    project.refresh_from_db()
    # Items imported after the last chunk was cut were refused a job of their own: pick them up.
    if Item.objects.filter(project=project, embed_error="", pk__gt=end).exists() or swapped:
        request_embedding(project)
    retrain_after_embedding(project, swapped)
    return "done"


def _last_chunk(job: Job) -> int:
    return EmbedChunk.objects.filter(job=job).aggregate(m=Max("last_id"))["m"] or 0


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
