"""Requests for the backbone check (worker/backbone_check.py) and what the pages show of it.

A check runs by itself once every labeled class has at least MIN_PER_CLASS labels (and at least
two classes do), and again whenever the labels have doubled since the last check; a lead can run
one at any time. At most one check per project is queued or running (a stale one expires).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from labeler.projects.models import Project

from .models import BackboneCheck, ModelVersion, Status
from .services import _enqueue

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
    from worker.backbone_check import check_backbones

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
    if not _enqueue(check_backbones, check.pk):
        check.status = BackboneCheck.State.FAILED
        check.error = "could not reach the task queue (is Redis running?)"
        check.finished_at = timezone.now()
        check.save(update_fields=["status", "error", "finished_at", "updated_at"])
        return None
    logger.info("backbone check %s queued for project %s", check.pk, project.pk)
    return check


def check_due(project: Project) -> bool:
    """Enough labels for a first check, or twice the labels of the last one."""
    version = (ModelVersion.objects.filter(project=project, status=Status.READY)
               .order_by("-number").only("metrics").first())
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
