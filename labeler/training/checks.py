"""The backbone check on the web side: requests, the plan sent to a GPU worker
(worker.tasks.check_backbones), its reports, and what the pages show of it.

A check runs by itself once every labeled class has at least MIN_PER_CLASS labels (and at least
two classes do), and again whenever the labels have doubled since the last check; a lead can run
one at any time. At most one check per project is queued or running (a stale one expires).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.utils import timezone

from labeler.annotations.current import current_labels
from labeler.items.models import Item
from labeler.projects.models import Project
from worker import compute

from .models import BackboneCheck, ModelVersion
from .services import send
from .stores import image_location, store_for, store_root

logger = logging.getLogger("labeler.training")

#: Labels per class before the first automatic check (worker.ml.transferability.MIN_PER_CLASS,
#: repeated here so that the web process never imports the ML core).
MIN_PER_CLASS = 5
#: A queued or running check not heard from for this long is presumed lost.
CHECK_GUARD = timedelta(minutes=30)


def latest_check(project: Project) -> BackboneCheck | None:
    return project.backbone_checks.order_by("-created_at", "-id").first()


def request_check(project: Project) -> BackboneCheck | None:
    """Queue a check unless one is already queued or running; returns the new check or None."""
    stale = timezone.now() - CHECK_GUARD
    active = project.backbone_checks.filter(
        status__in=[BackboneCheck.State.QUEUED, BackboneCheck.State.RUNNING]
    )
    active.filter(updated_at__lt=stale).update(
        status=BackboneCheck.State.FAILED, error="lost: no progress for 30 minutes",
        finished_at=timezone.now(),
    )
    if active.exists():
        return None
    check = BackboneCheck.objects.create(project=project, backbone=project.backbone,
                                         stage="waiting for a worker")
    if not send("labeler.training.tasks.run_check", check.pk):
        check.status = BackboneCheck.State.FAILED
        check.error = "could not reach the task queue (is Redis running?)"
        check.finished_at = timezone.now()
        check.save(update_fields=["status", "error", "finished_at", "updated_at"])
        return None
    logger.info("backbone check %s queued for project %s", check.pk, project.pk)
    return check


def check_due(project: Project) -> bool:
    """Enough labels for a first check, or twice the labels of the last one."""
    version = ModelVersion.objects.latest_ready(project)
    if version is None:
        return False
    counts = [int(c) for c in (version.metrics.get("class_counts") or {}).values()]
    enough = [c for c in counts if c >= MIN_PER_CLASS]
    if len(enough) < 2:
        return False
    last = latest_check(project)  # a failed one counts too: no retry at every retrain
    if last is None:
        return len(enough) == len(counts)
    return sum(counts) >= 2 * max(last.labels_used, 1)


def _update(check_id: int, **fields) -> None:
    BackboneCheck.objects.filter(pk=check_id).update(updated_at=timezone.now(), **fields)


def plan_check(check_id: int) -> dict | None:
    """The GPU worker's message for a queued check (the labeled items, the backbones, their
    stores); None when the check is gone. Only items the current backbone has embedded: its
    store is the embedding job's."""
    check = BackboneCheck.objects.select_related("project").filter(pk=check_id).first()
    if check is None or not check.active:
        return None
    project = check.project
    current = project.backbone
    labels, _ = current_labels(project)
    rows = {pk: (image, source) for pk, image, source in Item.objects.filter(
        pk__in=list(labels), embed_error="").values_list("pk", "image", "source")}
    ids = store_for(project.pk, current).ids()
    ids = ids[np.isin(ids, np.fromiter(rows, dtype=np.int64))]
    _update(check.pk, status=BackboneCheck.State.RUNNING, backbone=current, done=0,
            labels_used=len(ids), stage="waiting for a GPU worker")
    # The backbones compared: those named in the settings, else every one the worker finds
    # installed (its machine, not this one, decides).
    job = {"id": check.pk, "current": current, "wanted": settings.LABELER_CHECK_BACKBONES,
           "exclude": [project.pending_backbone] if project.pending_backbone else [],
           "store_root": store_root(project.pk),
           "ids": ids.tolist(), "images": [image_location(*rows[int(i)]) for i in ids],
           "y": [labels[int(i)] for i in ids]}
    return job


def run_check(check_id: int) -> str:
    """Plan a queued check and send it to a GPU worker."""
    job = plan_check(check_id)
    if job is None:
        return "gone"
    if not send("worker.tasks.check_backbones", job):
        _update(check_id, status=BackboneCheck.State.FAILED, finished_at=timezone.now(),
                error="could not reach the task queue (is Redis running?)", stage="")
        return "failed"
    return "dispatched"


def check_now(check_id: int) -> dict | None:
    """Run a check to its end in this process (tests, scripts); its result, or None."""
    job = plan_check(check_id)
    if job is None:
        return None
    try:
        result = compute.check_backbones(job, lambda done, total, text: check_progress(
            check_id, done, total, text))
    except ValueError as exc:  # too few labels: a plain answer for the lead
        check_done(check_id, None, str(exc))
        return None
    check_done(check_id, result, "")
    return BackboneCheck.objects.get(pk=check_id).result


def check_progress(check_id: int, done: int, total: int, stage: str) -> None:
    BackboneCheck.objects.filter(pk=check_id, status=BackboneCheck.State.RUNNING).update(
        done=done, total=total, stage=stage[:200], updated_at=timezone.now())


def check_done(check_id: int, result: dict | None, error: str) -> None:
    """The worker's result: add what a switch would cost (from the rates it measured)."""
    check = BackboneCheck.objects.select_related("project").filter(pk=check_id).first()
    if check is None or not check.active:
        return
    if result is None:
        _update(check_id, status=BackboneCheck.State.FAILED, finished_at=timezone.now(),
                error=error[:2000], stage="")
        return
    project = check.project
    rates = result.pop("rates", {})
    items = Item.objects.filter(project=project, embed_error="").count()
    for row in result["rows"]:
        rate = rates.get(row["backbone"])
        row["images_per_s"] = rate
        # What a switch would cost: every item not embedded yet, at the rate measured here.
        left = items - len(store_for(project.pk, row["backbone"]).ids())
        row["switch_minutes"] = round(left / rate / 60, 1) if rate and left > 0 else None
    pending = project.pending_backbone
    result["skipped"] = [pending] if pending else []
    names = dict(project.classes.values_list("pk", "name"))
    result["dropped_classes"] = [names.get(c, str(c)) for c in result["dropped_classes"]]
    _update(check_id, status=BackboneCheck.State.DONE, finished_at=timezone.now(), stage="",
            result=result, labels_used=result["n_labels"])


def request_check_if_due(project: Project) -> BackboneCheck | None:
    """The automatic trigger (after each retrain); off with LABELER_BACKBONE_CHECK_AUTO=0."""
    if not settings.LABELER_BACKBONE_CHECK_AUTO or not check_due(project):
        return None
    return request_check(project)


def _display(row: dict) -> dict:
    """A table row with its numbers formatted for people (points, not fractions)."""
    lo, hi = row["ci"]
    se = row.get("gain_se")
    return {
        **row,
        "accuracy_text": f"{100 * row['cv_accuracy']:.1f} %",
        "ci_text": f"{100 * lo:.1f}–{100 * hi:.1f} %",
        "gain_text": f"{100 * row['gain']:+.1f}",
        "gain_se_text": "" if se is None else f"± {100 * se:.1f}",
    }


def check_context(project: Project) -> dict:
    """What the settings page and dashboard render: the latest check (its progress while it
    runs), and the latest finished one's table and advice."""
    check = latest_check(project)
    done = (check if check is not None and check.status == BackboneCheck.State.DONE
            else project.backbone_checks.filter(status=BackboneCheck.State.DONE)
            .order_by("-created_at", "-id").first())
    context: dict = {"check": check, "check_done": done, "check_rows": [],
                     "check_recommended": None, "check_stale": False}
    if done is None:
        return context
    result = done.result
    rows = [_display(r) for r in result.get("rows", [])]
    context["check_rows"] = rows
    context["check_result"] = result
    # The gains are relative to the backbone the check ran with; after a switch they are stale.
    context["check_stale"] = result.get("current") != project.backbone
    rec = result.get("recommended")
    if rec and not context["check_stale"] and not project.pending_backbone:
        context["check_recommended"] = next(r for r in rows if r["backbone"] == rec)
    return context
