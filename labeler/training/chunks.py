"""The chunks of one embedding job, claimed by several GPU workers at once (issue #16).

A job's items are cut into chunks by an id cursor (one indexed range read each, as before); up to
``LABELER_EMBED_PARALLEL`` chunks of a job are *in flight* at a time, each its own ``EmbedChunk``
row with an owner token. Cutting and claiming run under a lock on the job's row (``SELECT … FOR
UPDATE`` on PostgreSQL; SQLite serialises writers anyway), so two web workers never cut the same
range; chunks to redo are taken with ``skip_locked``. A chunk silent for
``LABELER_JOB_STALE_SECONDS`` (the one staleness rule, per chunk: its worker beats every
``LABELER_HEARTBEAT_SECONDS``) is claimed again with a new token and sent to another worker; its
first worker's late heartbeats and report name the old token and change nothing.

The job's ``cursor`` stays what it was: every item up to it went through a done chunk (the
frontier below the lowest chunk still running), so a new job resumes from it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone

from labeler.items.models import Item

from .actions import do_heartbeat, stale_before
from .ingest import store_embed_errors
from .models import EmbedChunk, Job

Chunk = EmbedChunk.State


def in_flight_limit() -> int:
    """Chunks of one job sent at once: 1 fits one local worker; N GPU workers want about N."""
    return max(1, int(settings.LABELER_EMBED_PARALLEL))


def _claim(chunk: EmbedChunk) -> EmbedChunk:
    """Give a chunk a new owner token (its former owner's reports no longer count)."""
    chunk.token, chunk.worker, chunk.heartbeat_at = uuid.uuid4().hex, "", timezone.now()
    chunk.claims, chunk.progress, chunk.rate = F("claims") + 1, 0, 0.0
    chunk.save(update_fields=["token", "worker", "heartbeat_at", "claims", "progress", "rate"])
    chunk.refresh_from_db(fields=["claims"])
    return chunk


def claim(job: Job, have: np.ndarray) -> EmbedChunk | str:
    """The job's next chunk to send: a silent one to redo, else a new one cut above the last.

    ``have``: the ids stored already (skipped when cutting). Returns "busy" when the in-flight
    limit is reached or only running chunks are left, "empty" when every chunk is done.
    """
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job.pk, status__in=Job.ACTIVE).first()
        if locked is None:
            return "gone"
        chunks = EmbedChunk.objects.filter(job=job)
        lost = (chunks.select_for_update(skip_locked=True)
                .filter(status=Chunk.RUNNING, heartbeat_at__lt=stale_before())
                .order_by("last_id").first())
        if lost is not None:
            return _claim(lost)
        state = chunks.aggregate(running=Count("pk", filter=Q(status=Chunk.RUNNING)),
                                 last=Max("last_id"))
        running = state["running"]
        if running >= in_flight_limit():
            return "busy"
        cursor = max(locked.cursor, state["last"] or 0)
        items = Item.objects.filter(project_id=job.project_id, embed_error="")
        while True:
            rows = list(items.filter(pk__gt=cursor).order_by("pk")
                        .values_list("pk", flat=True)[: max(1, settings.LABELER_EMBED_CHUNK)])
            if not rows:
                return "busy" if running else "empty"
            ids = np.array(rows, dtype=np.int64)
            todo = ids[~np.isin(ids, have)].tolist()
            stored = len(rows) - len(todo)
            chunk = EmbedChunk.objects.create(
                job=job, after=cursor, last_id=int(ids[-1]), ids=todo, token=uuid.uuid4().hex,
                heartbeat_at=timezone.now(),
                status=Chunk.RUNNING if todo else Chunk.DONE,
                finished_at=None if todo else timezone.now())
            if stored:  # a rescan, or a crash after the store: counted as done now
                Job.objects.filter(pk=job.pk).update(done=F("done") + stored)
            if todo:
                return chunk
            cursor = chunk.last_id
            _advance(job)


def images_of(chunk: EmbedChunk) -> list[tuple[str, str]]:
    """The chunk's images, in the order of its ids: (stored file name, source object or URL of
    an item imported without copying) for labeler.training.stores.image_location."""
    rows = {pk: (image, source) for pk, image, source in
            Item.objects.filter(pk__in=chunk.ids).values_list("pk", "image", "source")}
    return [rows.get(pk, ("", "")) for pk in chunk.ids]


def unsent(chunk: EmbedChunk) -> None:
    """Its message could not be sent: let the next claim take it at once."""
    EmbedChunk.objects.filter(pk=chunk.pk, token=chunk.token).update(
        heartbeat_at=stale_before() - timedelta(seconds=1))


def _owned(job_id: int, token: str, chunk_id: int, chunk_token: str):
    return EmbedChunk.objects.filter(pk=chunk_id, job_id=job_id, token=chunk_token,
                                     status=Chunk.RUNNING, job__token=token,
                                     job__status__in=Job.ACTIVE)


def alive(job_id: int, token: str, chunk_id: int, chunk_token: str, worker: str,
          done: int | None = None, rate: float | None = None) -> bool:
    """A heartbeat from the chunk's worker (with its progress): the chunk, and so its job, is
    alive."""
    fields: dict = {"heartbeat_at": timezone.now(), "worker": worker[:200]}
    if done is not None:
        fields["progress"] = max(0, int(done))
    if rate is not None:
        fields["rate"] = float(rate)
    if not _owned(job_id, token, chunk_id, chunk_token).update(**fields):
        return False
    return do_heartbeat(job_id, token)


def in_flight(job: Job) -> tuple[int, float]:
    """(items done, items per second) of the job's running chunks, all workers together: what a
    progress bar adds to the job's ``done`` (which counts finished chunks)."""
    state = EmbedChunk.objects.filter(job=job, status=Chunk.RUNNING).aggregate(
        done=Sum("progress"), rate=Sum("rate"))
    return int(state["done"] or 0), float(state["rate"] or 0.0)


def record(job_id: int, token: str, report: dict) -> bool:
    """A worker embedded its chunk: mark it done (by whom), record failed images, count it and
    move the job's cursor to the new frontier. False for a report whose token no longer owns
    the chunk (a redelivered message, a worker presumed dead): nothing changes."""
    chunk_id, chunk_token = report.get("chunk"), report.get("chunk_token")
    if chunk_id is None or not chunk_token:
        return False  # a report from before chunks had owners
    with transaction.atomic():
        if not _owned(job_id, token, int(chunk_id), str(chunk_token)).update(
                status=Chunk.DONE, finished_at=timezone.now(),
                worker=str(report.get("worker", ""))[:200]):
            return False
        errors = {int(k): v for k, v in (report.get("errors") or {}).items()}
        if errors:
            store_embed_errors(errors)
        n = len(EmbedChunk.objects.values_list("ids", flat=True).get(pk=chunk_id))
        fields: dict = {"done": F("done") + n, "heartbeat_at": timezone.now()}
        if report.get("rate"):
            fields["rate"] = float(report["rate"])
        Job.objects.filter(pk=job_id).update(**fields)
    _advance(Job(pk=job_id, token=token))
    return True


def _advance(job: Job) -> None:
    """Move the job's cursor (only forward) to its frontier: just below the lowest chunk still
    running, else the end of the last chunk."""
    edge = EmbedChunk.objects.filter(job_id=job.pk).aggregate(
        low=Min("after", filter=Q(status=Chunk.RUNNING)), high=Max("last_id"))
    frontier = edge["low"] if edge["low"] is not None else edge["high"]
    if frontier:
        Job.objects.filter(pk=job.pk, token=job.token, status__in=Job.ACTIVE,
                           cursor__lt=frontier).update(cursor=frontier)
