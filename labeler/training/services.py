"""Requests for background work: start a job (labeler.training.actions) and send its first
message to a web task, which plans the work and sends it to the GPU workers.

A request the broker refused leaves its job *delayed*: the periodic sweep (labeler.training.sweep)
or the next request queues it once the broker is back, and the pages say that work waits.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.db.models import Max

from labeler.annotations.models import Annotation
from labeler.celery import app
from labeler.projects.models import LabelSet, Project

from .actions import (
    Kind,
    State,
    active_job,
    do_delay_job,
    do_fail_job,
    do_requeue_job,
    do_start_job,
    stale_before,
)
from .models import Job

logger = logging.getLogger("labeler.training")

#: The web task that takes each kind of job from queued to running (it gets the job's id).
FIRST_STEP = {
    Kind.EMBED: "labeler.training.tasks.embed_next",
    Kind.SWITCH_BACKBONE: "labeler.training.tasks.embed_next",
    Kind.RETRAIN: "labeler.training.tasks.run_retrain",
    Kind.MAP: "labeler.insights.tasks.run_map",
    Kind.EXPORT: "labeler.insights.tasks.write_export",
}


def send(name: str, *args) -> bool:
    """Send a task by name; if the broker is down, log it and say so instead of failing."""
    try:
        # ignore_result: else send_task waits on the result store too (~20 s with Redis down).
        app.send_task(name, args=args, ignore_result=True, retry=True,
                      retry_policy={"max_retries": 2})
    except Exception as exc:  # kombu raises several types for an unreachable broker
        # Expected while Redis is down or not yet up (make run sets the demo up before it):
        # one line, no traceback; the caller leaves the job delayed for the sweep.
        logger.warning("could not enqueue %s%s (%s: %s): is Redis running? The work waits and"
                       " is queued once the broker answers.", name, args, type(exc).__name__, exc)
        return False
    return True


def launch(job: Job) -> bool:
    """Send the job's first message; a refused one leaves the job delayed (not lost)."""
    if send(FIRST_STEP[job.kind], job.pk):
        logger.info("%s queued for project %s (job %s)", job.kind, job.project_id, job.pk)
        return True
    do_delay_job(job, "could not be queued: the task broker (Redis) is unreachable")
    return False


def start(project: Project | int, kind: str, **fields) -> bool:
    """Start a job of ``kind`` unless one is active; retry a delayed one. True if queued."""
    job = do_start_job(project, kind, **fields)
    if job is None:
        current = active_job(project, kind)
        if current is not None and current.status == State.DELAYED and do_requeue_job(current):
            return launch(current)
        return False
    return launch(job)


def resume_cursor(project_id: int, backbone: str) -> int:
    """Where embedding with ``backbone`` stopped: items up to this id went through a chunk."""
    return Job.objects.filter(
        project_id=project_id, kind__in=[Kind.EMBED, Kind.SWITCH_BACKBONE],
        params__backbone=backbone,
    ).aggregate(m=Max("cursor"))["m"] or 0


def request_embedding(project: Project | int, *, rescan: bool = False) -> bool:
    """Embed the items the project's backbone has not embedded yet (from where it stopped, or
    from the first item with ``rescan``)."""
    if isinstance(project, int):
        project = Project.objects.get(pk=project)
    cursor = 0 if rescan else resume_cursor(project.pk, project.backbone)
    return start(project, Kind.EMBED, cursor=cursor,
                 params={"backbone": project.backbone, "weights": project.backbone_weights})


def request_switch(project: Project, backbone: str, weights: str = "") -> bool:
    """Embed every item with ``backbone`` while the current one keeps serving, then swap it in
    (labeler.training.embedding.finish). A switch to another backbone replaces this one."""
    current = active_job(project, Kind.SWITCH_BACKBONE)
    if current is not None:
        if current.params.get("backbone") == backbone and current.params.get("weights") == weights:
            return False
        do_fail_job(current, f"cancelled: replaced by a switch to {backbone}")
    return start(project, Kind.SWITCH_BACKBONE, cursor=resume_cursor(project.pk, backbone),
                 params={"backbone": backbone, "weights": weights})


def cancel_switch(project: Project) -> bool:
    current = active_job(project, Kind.SWITCH_BACKBONE)
    return current is not None and do_fail_job(current, "cancelled: the backbone was kept")


def request_retrain(project: Project | int) -> bool:
    """Retrain unless a retrain is queued or running. True if one was queued."""
    return start(project, Kind.RETRAIN)


def request_map(project: Project) -> bool:
    """Compute the embedding map unless it is being computed. True if queued by this call."""
    return start(project, Kind.MAP, params={"backbone": project.backbone})


def request_retrain_if_due(project: Project | int) -> bool:
    """Retrain after every `retrain_every` new labels (and for the first model, at that count).

    New labels are items labelled since the last retrain read its labels (the ``cursor`` of
    its job). This runs after every saved label, so it costs the same whatever the project's
    size or `retrain_every`: one row read, and a count of at most `retrain_every` items' rows,
    skipped while fewer annotation rows than `retrain_every` (of any project) were saved since.
    """
    project_id = project if isinstance(project, int) else project.pk
    jobs, annotations = Job._meta.db_table, Annotation._meta.db_table
    with connection.cursor() as cursor:
        since = connection.ops.adapt_datetimefield_value(stale_before())
        cursor.execute(
            f"SELECT p.retrain_every, p.overlap,"
            f" (SELECT COUNT(*) FROM {LabelSet._meta.db_table} s WHERE s.project_id = p.id),"
            f" (SELECT MAX(a.id) FROM {annotations} a),"
            f" (SELECT j.cursor FROM {jobs} j WHERE j.project_id = p.id AND j.kind = %s"
            "   AND j.status = %s ORDER BY j.id DESC LIMIT 1),"
            f" EXISTS (SELECT 1 FROM {jobs} j WHERE j.project_id = p.id AND j.kind = %s"
            "   AND j.status IN (%s, %s) AND j.heartbeat_at > %s)"
            f" FROM {Project._meta.db_table} p WHERE p.id = %s",
            [Kind.RETRAIN, State.DONE, Kind.RETRAIN, State.QUEUED, State.RUNNING, since,
             project_id],
        )
        row = cursor.fetchone()
        if row is None or row[5]:
            return False  # no such project, or a retrain is queued or running
        every, overlap, n_sets, newest, mark = max(1, row[0]), row[1], row[2], row[3], row[4] or 0
        if (newest or 0) - mark < every:
            return False  # fewer rows than `every` since the mark: fewer new items
        # Items, not rows: one visit answers every label set, one row per set (and per
        # annotator under overlap). The newest `every` items' rows at most are read; should
        # they hold fewer items (relabels), later labels still count, being newest.
        cursor.execute(
            f"SELECT COUNT(DISTINCT item_id) FROM (SELECT a.item_id FROM {annotations} a"
            f" WHERE a.id > %s AND a.label_set_id IN"
            f" (SELECT s.id FROM {LabelSet._meta.db_table} s WHERE s.project_id = %s)"
            " ORDER BY a.id DESC LIMIT %s) AS new_rows",
            [mark, project_id, every * max(1, n_sets) * max(1, overlap)],
        )
        new_labels = cursor.fetchone()[0]
    if new_labels >= every:
        return request_retrain(project_id)
    return False


def embedding_job(project: Project) -> Job | None:
    """The embedding the pages show: the active one (the current backbone's first, then a
    switch's), else the latest."""
    jobs = Job.objects.filter(project=project, kind__in=[Kind.EMBED, Kind.SWITCH_BACKBONE])
    active = sorted(jobs.filter(status__in=Job.ACTIVE), key=lambda j: j.kind != Kind.EMBED)
    return active[0] if active else jobs.order_by("-id").first()


def retraining(project: Project) -> bool:
    """A retrain is queued or running (not delayed: that one the notice explains)."""
    return Job.objects.filter(project=project, kind=Kind.RETRAIN,
                              status__in=[State.QUEUED, State.RUNNING]).exists()
