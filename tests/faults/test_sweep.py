"""The sweep on its own (real Redis, no worker): it queues what waits, nothing twice, with a
number of queries that depends on the projects only; and the pages' delay notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeler.projects.models import Project
from labeler.training.sweep import delay_notice, sweep


@pytest.fixture
def queue(redis_url):
    """The broker's queue, emptied afterwards: no later test's worker may run these tasks."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(redis_url)
    yield lambda: client.llen(settings.CELERY_TASK_DEFAULT_QUEUE)
    client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)


def test_sweep_queues_delayed_work_once(queue, project_factory, db):
    waiting = project_factory("Waiting")
    idle = project_factory("Idle")
    Project.objects.filter(pk=waiting.pk).update(
        embed_status="delayed", retrain_delayed=True, delayed_since=timezone.now()
    )
    assert sweep() == {"embedding": 1, "retrain": 1}
    assert queue() == 2
    waiting.refresh_from_db()
    assert waiting.embed_status == "queued" and not waiting.retrain_delayed
    assert waiting.delayed_since is None and waiting.work_checked_at is not None
    assert delay_notice(waiting) is None
    # Idempotent: the guards hold, nothing is queued twice.
    assert sweep() == {"embedding": 0, "retrain": 0}
    assert queue() == 2
    idle.refresh_from_db()
    assert idle.embed_requested_at is None and idle.retrain_requested_at is None


def test_sweep_cost_does_not_grow_with_items(queue, project_factory, add_images, db):
    projects = [project_factory(f"P{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as few:
        sweep()
    add_images(projects[0], 40)
    with CaptureQueriesContext(connection) as many:
        sweep()
    assert len(many) == len(few)


def test_delay_notice_says_why(project_factory, db, settings):
    project = project_factory("Late")
    assert delay_notice(project) is None
    project.embed_status = "delayed"
    project.delayed_since = timezone.now()
    assert "embedding could not be queued" in delay_notice(project)
    project.embed_status = "done"
    project.work_checked_at = timezone.now() - timedelta(
        seconds=3 * settings.LABELER_SWEEP_SECONDS + 61)
    assert "no worker has checked" in delay_notice(project)
    project.work_checked_at = timezone.now()
    project.embed_requested_at = timezone.now() - timedelta(hours=1)
    assert "Embedding is delayed" in delay_notice(project)
