"""Retrain jobs on the web side: plan one (read the current labels, choose the version number
and the locations), send it to a GPU worker (worker.tasks.retrain), and ingest its results
(the new ModelVersion, the ranking, every item's suggestion).

The worker writes the head and a results file to storage and reports; the version is created
only when that report is ingested, in the same transaction that finishes the job with the
job's token, so a duplicated report (a worker killed after reporting, its message redelivered)
creates nothing twice.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from labeler.annotations.current import current_labels
from labeler.annotations.models import Annotation
from labeler.projects.label_sets import primary_set
from labeler.projects.models import Project
from worker import compute, storage

from .actions import (
    Kind,
    active_job,
    do_delay_job,
    do_fail_job,
    do_finish_job,
    do_heartbeat,
    do_plan_job,
    do_start_job,
)
from .comparison import Candidate, compare_versions
from .ingest import (
    backfill_suggestions,
    store_oof,
    store_predictions,
    store_ranking,
    vacuum_items,
)
from .models import Job, ModelVersion, Status
from .services import send
from .set_training import plan_sets, store_set_predictions
from .stores import head_location, result_location, store_location

logger = logging.getLogger("labeler.training")

#: A pool this large or smaller gets all its suggestions rewritten after every retrain (seconds).
REFRESH_ALWAYS_ROWS = 100_000
#: A larger pool, when its labels grew by this share since its last full refresh (a million rows
#: take a minute or two of writes; annotators labelling fast retrain every half minute).
REFRESH_LABEL_GROWTH = 0.2
#: ... and once the last refresh has been over for this many times as long as it took: pool
#: rewrites then hold the database at most 1 / (1 + REFRESH_REST) of the time, so annotators
#: labelling fast on a young 1M project (whose labels grow by a fifth every few seconds) are not
#: served next to a rewrite that never stops.
REFRESH_REST = 3.0


def refresh_due(project: Project, backbone: str, rows: int, labels_used: int) -> bool:
    """Whether a new version rewrites the suggestions of the whole pool (``rows`` items beyond
    the ranked and labelled ones, which every version rewrites). Between full refreshes the
    pool keeps an earlier version's suggestions of the same backbone."""
    if rows <= REFRESH_ALWAYS_ROWS:
        return True
    last = (ModelVersion.objects.filter(project=project, backbone=backbone,
                                        metrics__has_key="suggestions_seconds")
            .order_by("-number").only("labels_used", "finished_at", "metrics").first())
    if last is None:
        return True
    took = float(last.metrics["suggestions_seconds"])
    ended = (last.finished_at or timezone.now()) + timedelta(seconds=took)
    rested = (timezone.now() - ended).total_seconds() >= REFRESH_REST * took
    return rested and labels_used >= last.labels_used * (1 + REFRESH_LABEL_GROWTH)


def plan(job: Job) -> dict:
    """The worker's message for a retrain job: everything it needs, as plain data."""
    project = job.project
    # Taken before the labels are read, so that a label saved meanwhile counts as new.
    mark = Annotation.objects.filter(item__project=project).aggregate(m=Max("id"))["m"] or 0
    labels, audit = current_labels(project)
    number = (ModelVersion.objects.filter(project=project).aggregate(m=Max("number"))["m"]
              or 0) + 1
    locations = {"number": number, "backbone": project.backbone,
                 "strategy": project.query_strategy,
                 "head": head_location(project.pk, number),
                 "result": result_location(project.pk, job.pk)}
    sets = plan_sets(project, audit)  # the other label sets' labels (one head each)
    do_plan_job(job, cursor=mark, params={**locations, "sets": [s["id"] for s in sets]})
    primary = primary_set(project)
    return {
        "id": job.pk, "token": job.token, "heartbeat": settings.LABELER_HEARTBEAT_SECONDS,
        "project": project.pk, "store": store_location(project.pk, project.backbone),
        "n_classes": project.classes.filter(label_set=primary).count(),
        "query_pool": settings.LABELER_QUERY_POOL_SIZE,
        "retrain_every": project.retrain_every, "items": list(labels),
        "labels": list(labels.values()), "audit": sorted(audit), "sets": sets, **locations,
        # With other sets: the primary one, for the head choice and the joint ranking.
        **({"primary": {"id": primary.pk, "name": primary.name,
                        "classes": list(primary.classes.values_list("pk", flat=True))},
            "previous_choice": _previous_choice(project)}
           if sets and primary is not None else {}),
    }


def _previous_choice(project: Project) -> dict | None:
    """The latest ready version's head choice (worker.multi_set keeps it while it stands)."""
    version = (ModelVersion.objects.filter(project=project, status=Status.READY)
               .order_by("-number").only("metrics").first())
    return (version.metrics or {}).get("head_choice") if version is not None else None


def run_retrain(job_id: int) -> str:
    """The job's first step: plan it and send it to a GPU worker."""
    job = Job.objects.select_related("project").filter(pk=job_id, status__in=Job.ACTIVE).first()
    if job is None:
        return "gone"
    message = plan(job)
    if not send("worker.tasks.retrain", message):
        do_delay_job(job, "could not be queued: the task broker (Redis) is unreachable")
        return "delayed"
    return "dispatched"


def ingest(job_id: int, token: str, report: dict) -> dict | None:
    """Store a retrain's results. Returns ``{"version", **metrics}``, or None when it made no
    model (a cold-start ranking) or the job is no longer this token's (nothing changes)."""
    job = Job.objects.select_related("project").filter(
        pk=job_id, token=token, status__in=Job.ACTIVE).first()
    if job is None:
        return None
    project, p = job.project, job.params
    results = storage.load_arrays(p["result"])
    if not report["model"]:
        if len(results["ranked"]):
            store_ranking(project, results["ranked"].tolist())
        do_finish_job(job_id, token, message="labeled items not embedded yet"
                      if report.get("skipped") else "")
        storage.remove(p["result"])
        return None
    metrics = report["metrics"]
    labels, audit = current_labels(project)
    extra = ([Candidate(p["number"], p["backbone"], metrics["n_labels"], p["head"])]
             if report.get("eval_head") else [])
    try:  # every version scored on the current audit items (labeler.training.comparison)
        metrics["comparison"] = compare_versions(project, labels, audit, extra=extra)
    except Exception as exc:  # noqa: BLE001 - an extra: never fail the retrain for it
        logger.exception("version comparison failed for project=%s", project.pk)
        metrics["comparison_error"] = f"{type(exc).__name__}: {exc}"
    # Served first: the ranking, with the suggestions of the ranked items (the ones annotators
    # get next) and of the labelled ones (the error pages); the rest of the pool after.
    started = time.monotonic()
    ids, ranked = results["ids"], results["ranked"]
    first = np.isin(ids, np.concatenate([ranked, results["oof_item"]]))
    store_predictions(project, ids[first], results["predicted"][first],
                      results["confidence"][first], ranked.tolist())
    if len(results["oof_item"]):  # the item table's confusion-matrix cells
        store_oof(results["oof_item"], results["oof_predicted"].tolist())
    store_set_predictions(results, [{"id": s} for s in p.get("sets", [])])
    metrics["ingest_seconds"] = round(time.monotonic() - started, 3)
    # Whether this version also rewrites the rest of the pool's suggestions (after it is served).
    metrics["pool_refresh"] = refresh_due(project, p["backbone"], int((~first).sum()),
                                          report["labels_used"])
    with transaction.atomic():
        if not do_finish_job(job_id, token, result=p["head"]):
            return None
        version = ModelVersion.objects.create(
            project=project, number=p["number"], status=Status.READY, backbone=p["backbone"],
            strategy=p["strategy"], labels_used=report["labels_used"], metrics=metrics,
            head_file=p["head"], finished_at=timezone.now(),
        )
    storage.remove(p["result"])
    started = time.monotonic()
    newer = ModelVersion.objects.filter(project=project, number__gt=p["number"])
    rest = ~first
    if metrics["pool_refresh"] and backfill_suggestions(
            ids[rest], results["predicted"][rest], results["confidence"][rest],
            lambda: not newer.exists()):
        vacuum_items()  # the dashboard's count reads the index only
        metrics["suggestions_seconds"] = round(time.monotonic() - started, 3)
        ModelVersion.objects.filter(pk=version.pk).update(metrics=metrics)
    logger.info("project=%s v%d ready: cv_accuracy=%s", project.pk, p["number"],
                metrics.get("cv_accuracy"))
    return {"version": p["number"], **metrics}


def retrain_now(project: Project) -> dict | None:
    """Run a whole retrain in this process (tests, benchmarks, scripts): the same plan, compute
    and ingest as through the queue. A retrain job active meanwhile is replaced."""
    job = do_start_job(project, Kind.RETRAIN)
    if job is None:
        current = active_job(project, Kind.RETRAIN)
        if current is not None:
            do_fail_job(current, "replaced by a retrain run in-process")
        job = do_start_job(project, Kind.RETRAIN)
    job.project = project
    message = plan(job)
    do_heartbeat(job.pk, job.token)
    try:
        report = compute.train_and_rank(message)
    except Exception as exc:
        do_fail_job(job, f"{type(exc).__name__}: {exc}", token=job.token)
        raise
    return ingest(job.pk, job.token, report)
