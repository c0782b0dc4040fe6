"""The sweep on its own (real Redis, no worker): it queues what waits, nothing twice, with a
number of queries that depends on the projects only; and the pages' delay notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeler.training.actions import do_delay_job, do_finish_job, do_requeue_job, do_start_job
from labeler.training.models import Job
from labeler.training.sweep import delay_notice, sweep
from worker.celery_app import WEB_QUEUE


@pytest.fixture
def queue(redis_url):
    """The broker's queue, emptied afterwards: no later test's worker may run these tasks."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(WEB_QUEUE)  # what earlier tests of this session sent
    yield lambda: client.llen(WEB_QUEUE)
    client.delete(WEB_QUEUE)


def delayed(project, kind: str) -> Job:
    job = do_start_job(project, kind, params={"backbone": project.backbone})
    assert do_delay_job(job, "the broker was down")
    return job


def test_sweep_queues_delayed_work_once(queue, project_factory, db):
    waiting = project_factory("Waiting")
    idle = project_factory("Idle")
    delayed(waiting, Job.Kind.EMBED)
    delayed(waiting, Job.Kind.RETRAIN)
    assert "could not be queued" in delay_notice(waiting)
    assert sweep() == {"embedding": 1, "retrain": 1}
    assert queue() == 2
    waiting.refresh_from_db()
    assert set(Job.objects.filter(project=waiting).values_list("status", flat=True)) == {"queued"}
    assert waiting.work_checked_at is not None
    assert delay_notice(waiting) is None
    # Idempotent: the jobs are active, nothing is queued twice.
    assert sweep() == {"embedding": 0, "retrain": 0}
    assert queue() == 2
    assert not Job.objects.filter(project=idle).exists()


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
    job = delayed(project, Job.Kind.EMBED)
    assert "embedding could not be queued" in delay_notice(project)
    assert do_requeue_job(job) and do_finish_job(job.pk, job.token)
    project.work_checked_at = timezone.now() - timedelta(
        seconds=3 * settings.LABELER_SWEEP_SECONDS + 61)
    assert "no worker has checked" in delay_notice(project)
    project.work_checked_at = timezone.now()
    silent = do_start_job(project, Job.Kind.EMBED, params={"backbone": project.backbone})
    Job.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert "Embedding is delayed" in delay_notice(project)
