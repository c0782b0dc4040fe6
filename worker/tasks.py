"""The GPU worker's Celery tasks: stateless compute on plain data.

Each task gets a ``job`` dict from the web side (labeler.training: the job's id and owner token,
item ids with their image locations, labels, backbone, strategy, storage locations), computes
with worker.compute, writes its results to storage and reports by sending a message to a web
task by name (``labeler.training.tasks.*``). Nothing here touches a database or imports Django:
a GPU machine needs the broker URL and storage access only. A task that dies (SIGKILL, lost
machine) is redelivered by the broker (acks_late) or its job found silent by the web side's
sweep; every report carries the job's token, so a late or duplicate report changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import shared_task

from worker import compute

logger = logging.getLogger("worker.tasks")

#: The web tasks that receive the reports (by name: the worker never imports them).
PROGRESS = "labeler.training.tasks.job_progress"
FAILED = "labeler.training.tasks.job_failed"
EMBEDDED = "labeler.training.tasks.embed_chunk_done"
CHUNK_ALIVE = "labeler.training.tasks.embed_chunk_alive"
RETRAINED = "labeler.training.tasks.retrain_done"
MAPPED = "labeler.insights.tasks.map_done"
CHECK_PROGRESS = "labeler.training.tasks.check_progress"
CHECKED = "labeler.training.tasks.check_done"


def report(name: str, *args: Any) -> None:
    """Send a message to a web task (retried while the broker is briefly away)."""
    from celery import current_app

    current_app.send_task(name, args=args, ignore_result=True, retry=True,
                          retry_policy={"max_retries": 10, "interval_start": 0.5,
                                        "interval_step": 1.0, "interval_max": 5.0})


@contextmanager
def heartbeat(job: dict[str, Any]) -> Iterator[None]:
    """While the body runs, tell the web side every ``job["heartbeat"]`` seconds that the job is
    alive (one staleness rule for every kind of job: labeler.training.actions)."""
    stop = threading.Event()
    every = float(job.get("heartbeat") or 30)

    def beat() -> None:
        while not stop.wait(every):
            try:
                report(PROGRESS, job["id"], job["token"], None, None)
            except Exception:  # the broker is away: the job may look stale, nothing is lost
                logger.warning("heartbeat of job %s not sent", job["id"], exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job['id']}", daemon=True)
    report(PROGRESS, job["id"], job["token"], None, None)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


class ChunkBeat:
    """One embedding chunk's signs of life: every ``beat["heartbeat"]`` seconds from a thread
    (the web side gives a silent chunk to another worker), and with its progress as batches
    finish (at most every ``every`` seconds: each report is a web task run)."""

    def __init__(self, beat: dict[str, Any], every: float = 2.0) -> None:
        self.args = (beat["id"], beat["token"], beat["chunk"], beat["chunk_token"], beat["worker"])
        self.interval, self.every = float(beat.get("heartbeat") or 30), every
        self.done, self.rate, self.last = 0, 0.0, 0.0
        self.stop = threading.Event()

    def send(self) -> None:
        self.last = time.monotonic()
        try:
            report(CHUNK_ALIVE, *self.args, self.done, self.rate)
        except Exception:  # the broker is away: the chunk may look silent, nothing is lost
            logger.warning("heartbeat of chunk %s not sent", self.args[2], exc_info=True)

    def progress(self, done: int, rate: float) -> None:
        self.done, self.rate = done, rate
        if time.monotonic() - self.last >= self.every:
            self.send()

    @contextmanager
    def running(self) -> Iterator[ChunkBeat]:
        def loop() -> None:
            while not self.stop.wait(self.interval):
                self.send()

        self.send()
        thread = threading.Thread(target=loop, name=f"chunk-{self.args[2]}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(5)


@contextmanager
def failures_reported(job: dict[str, Any]) -> Iterator[None]:
    """An exception fails the job on the web side (with its message), then propagates."""
    try:
        yield
    except Exception as exc:
        logger.exception("job %s failed", job["id"])
        try:
            report(FAILED, job["id"], job["token"], f"{type(exc).__name__}: {exc}"[:2000])
        except Exception:  # the broker is away: the sweep finds the job silent instead
            logger.warning("failure of job %s not reported", job["id"], exc_info=True)
        raise


@shared_task(name="worker.tasks.embed_chunk", acks_late=True, bind=True)
def embed_chunk(self, job: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """Embed one chunk of a project's items into the backbone's store; report it done.

    ``chunk`` (labeler.training.embedding.next_chunk): ``chunk`` (its id) and ``token`` (its
    claim), ``name`` (its store object), ``ids`` and ``images`` (locations). Several chunks of
    one job run on several workers at once; each beats for its own chunk, so the web side can
    tell which one died and give it to another worker.
    """
    worker = str(getattr(self.request, "hostname", "") or "")
    beat = ChunkBeat({**job, "chunk": chunk["chunk"], "chunk_token": chunk["token"],
                      "worker": worker})
    with failures_reported(job), beat.running():
        result = compute.embed_chunk(
            job["store"], job["backbone"], chunk["name"], chunk["ids"], chunk["images"],
            weights=job.get("weights", ""), batch_size=int(job.get("batch_size") or 0),
            progress=beat.progress,
        )
    report(EMBEDDED, job["id"], job["token"], {
        "chunk": chunk["chunk"], "chunk_token": chunk["token"], "worker": worker,
        "rate": result["rate"], "embedded": result["embedded"],
        "errors": {str(k): v for k, v in result["errors"].items()},
    })
    return {"embedded": result["embedded"], "errors": len(result["errors"])}


@shared_task(name="worker.tasks.retrain", acks_late=True)
def retrain(job: dict[str, Any]) -> dict[str, Any]:
    """Fit the head, rank the pool, predict every item; results to storage, a report to web."""
    with failures_reported(job), heartbeat(job):
        result = compute.train_and_rank(job)
    report(RETRAINED, job["id"], job["token"], result)
    return {"model": result["model"], "labels_used": result["labels_used"]}


@shared_task(name="worker.tasks.project_map", acks_late=True)
def project_map(job: dict[str, Any]) -> dict[str, Any] | None:
    """Lay out the pool in 2-D: a quick linear map first if there is none, then t-SNE."""
    with failures_reported(job), heartbeat(job):
        if compute.read_map(job["out"]) is None:
            compute.compute_map(job["store"], job["out"], method="pca")
        data = compute.compute_map(job["store"], job["out"], method="tsne")
    summary = None if data is None else {
        "items": int(len(data["ids"])), "method": data["method"], "seconds": data["seconds"]}
    report(MAPPED, job["id"], job["token"], summary)
    return summary


@shared_task(name="worker.tasks.check_backbones", acks_late=True)
def check_backbones(job: dict[str, Any]) -> dict[str, Any] | None:
    """Run one backbone check (labeler.training.checks builds ``job``)."""
    last = [0.0]

    def stage(done: int, total: int, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or done == total:
            last[0] = now
            report(CHECK_PROGRESS, job["id"], done, total, text)

    try:
        result = compute.check_backbones(job, stage)
    except Exception as exc:
        # Too few labels (ValueError) is a plain answer for the lead, not a crash.
        report(CHECKED, job["id"], None, f"{type(exc).__name__}: {exc}"[:2000]
               if not isinstance(exc, ValueError) else str(exc))
        if isinstance(exc, ValueError):
            return None
        raise
    report(CHECKED, job["id"], result, "")
    return {"check": job["id"], "recommended": result.get("recommended")}
