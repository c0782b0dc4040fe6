"""The job layer: one active job per (project, kind), one staleness rule, owner tokens, and
embedding scheduled by an id cursor (O(new work), counted in queries on 20,000 items)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeler.items.models import Item
from labeler.training import embedding
from labeler.training.actions import (
    active_job,
    do_advance_job,
    do_fail_job,
    do_finish_job,
    do_heartbeat,
    do_start_job,
)
from labeler.training.models import Job
from labeler.training.stores import store_for

pytestmark = pytest.mark.django_db
EMBED, RETRAIN = Job.Kind.EMBED, Job.Kind.RETRAIN


def test_one_active_job_per_project_and_kind(project_factory):
    a, b = project_factory("A"), project_factory("B")
    first = do_start_job(a, EMBED)
    assert first is not None and first.status == "queued"
    assert do_start_job(a, EMBED) is None  # one at a time...
    assert do_start_job(a, RETRAIN) is not None  # ...per kind
    assert do_start_job(b, EMBED) is not None  # ...and per project
    # The database itself refuses a second active job, whoever writes it.
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(project=a, kind=EMBED, token="x", heartbeat_at=timezone.now())
    assert do_finish_job(first.pk, first.token)
    assert do_start_job(a, EMBED) is not None  # a finished job frees the slot


def test_a_silent_job_is_replaced_and_its_late_reports_change_nothing(project_factory, settings):
    project = project_factory("Stale")
    old = do_start_job(project, RETRAIN)
    assert do_heartbeat(old.pk, old.token, done=3, rate=1.5)
    assert do_start_job(project, RETRAIN) is None  # alive: kept
    silent = timezone.now() - timedelta(seconds=settings.LABELER_JOB_STALE_SECONDS + 1)
    Job.objects.filter(pk=old.pk).update(heartbeat_at=silent)
    new = do_start_job(project, RETRAIN)
    assert new is not None and new.token != old.token
    old.refresh_from_db()
    assert old.status == "failed" and old.message.startswith("lost")
    # The presumed-dead worker reports after all: nothing moves.
    assert not do_heartbeat(old.pk, old.token, done=9)
    assert not do_finish_job(old.pk, old.token)
    assert not do_heartbeat(new.pk, old.token)  # another job's token
    assert do_heartbeat(new.pk, new.token)
    assert Job.objects.get(pk=new.pk).status == "running"
    assert do_fail_job(new, "boom", token=new.token)
    assert not do_finish_job(new.pk, new.token)  # failed stays failed
    assert active_job(project, RETRAIN) is None


def test_the_cursor_only_moves_forward(project_factory):
    job = do_start_job(project_factory("Cursor"), EMBED)
    assert do_advance_job(job.pk, job.token, cursor=10, done=10)
    assert not do_advance_job(job.pk, job.token, cursor=10, done=20)  # a duplicated report
    assert not do_advance_job(job.pk, job.token, cursor=5, done=15)
    job.refresh_from_db()
    assert (job.cursor, job.done) == (10, 10)


def _items(project, n: int, start: int = 0) -> np.ndarray:
    """Add n items; returns the ids of all the project's items."""
    Item.objects.bulk_create(
        (Item(project=project, image=f"items/{i}.jpg", original_name=f"{i}.jpg",
              sha256=f"{project.pk}-{i:060d}", width=8, height=8)
         for i in range(start, start + n)),
        batch_size=5000,
    )
    return np.array(Item.objects.filter(project=project).order_by("pk")
                    .values_list("pk", flat=True))


def _embed_by_hand(job: Job, report_errors: dict[int, str] | None = None) -> tuple[list, int]:
    """Drive one step of an embedding job as a GPU worker would; (chunk ids, queries)."""
    with CaptureQueriesContext(connection) as queries:
        planned = embedding.next_chunk(job.pk)
    if isinstance(planned, str):
        return [], len(queries)
    message, chunk = planned
    store_for(job.project_id, message["backbone"]).put(
        chunk["name"], np.array(chunk["ids"]), np.ones((len(chunk["ids"]), 4), np.float32))
    with CaptureQueriesContext(connection) as more:
        assert embedding.record_chunk(job.pk, job.token, {
            "chunk": chunk["chunk"], "chunk_token": chunk["token"], "worker": "test",
            "rate": 10.0, "errors": report_errors or {}})
    return chunk["ids"], len(queries) + len(more)


@pytest.mark.slow
def test_embedding_is_scheduled_by_cursor_in_constant_queries(project_factory, settings,
                                                              monkeypatch):
    """20,000 items in chunks of 1,000: every step reads one range of ids (a LIMIT query), in
    the same few queries whatever the project's size; a later job embeds only the new items."""
    from labeler.training import services

    monkeypatch.setattr(services, "send", lambda *a: True)  # no broker: this is about queries
    settings.LABELER_EMBED_CHUNK = 1000
    project = project_factory("Big")
    ids = _items(project, 20_000)
    job = do_start_job(project, EMBED, params={"backbone": project.backbone})
    steps = []
    seen: list[int] = []
    while True:
        chunk, queries = _embed_by_hand(job)
        if not chunk:
            break
        seen += chunk
        steps.append(queries)
    assert seen == ids.tolist()  # every item once, in id order
    assert len(steps) == 20
    # Constant per chunk (the first step also counts the items: two COUNTs, once per job): the
    # claim under the job's lock (its chunk rows) and the report that records it.
    assert max(steps[1:]) == min(steps[1:]) <= 20, steps
    assert steps[0] <= steps[1] + 3
    job.refresh_from_db()
    assert job.status == "done" and job.cursor == ids[-1] and job.done == job.total == 20_000

    # New items: the next job starts at the cursor and reads only them.
    new = _items(project, 100, start=20_000)[20_000:]
    job = do_start_job(project, EMBED, params={"backbone": project.backbone},
                       cursor=services.resume_cursor(project.pk, project.backbone))
    with CaptureQueriesContext(connection) as queries:
        chunk, _ = _embed_by_hand(job)
    assert chunk == new.tolist()
    item_reads = [q["sql"] for q in queries.captured_queries
                  if "items_item" in q["sql"] and "LIMIT" in q["sql"].upper()]
    assert len(item_reads) == 1 and '"id" >' in item_reads[0]


def test_failed_images_are_recorded_and_skipped(project_factory, monkeypatch, settings):
    from labeler.training import services

    monkeypatch.setattr(services, "send", lambda *a: True)
    settings.LABELER_EMBED_CHUNK = 3
    project = project_factory("Broken")
    ids = _items(project, 5)
    job = do_start_job(project, EMBED, params={"backbone": project.backbone})
    chunk, _ = _embed_by_hand(job, {int(ids[1]): "cannot identify image file"})
    assert chunk == ids[:3].tolist()
    assert Item.objects.get(pk=ids[1]).embed_error == "cannot identify image file"
    chunk, _ = _embed_by_hand(job)
    assert chunk == ids[3:].tolist()
    assert embedding.next_chunk(job.pk) == "done"  # no chunk left: the job finishes
    assert Job.objects.get(pk=job.pk).status == "done"


def test_job_state_is_carried_off_project_by_the_migration(transactional_db):
    """training 0003: the retrain mark, delayed work and a backbone switch become jobs."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = [("projects", "0006_labelclass_plural"), ("training", "0002_backbone_check")]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Project = apps.get_model("projects", "Project")
    old = Project.objects.create(name="Old", retrain_mark=41, retrain_delayed=True,
                                 pending_backbone="efficientnet-lite1", embed_status="done")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    jobs = {(j.kind, j.status): j for j in Job.objects.filter(project_id=old.pk)}
    assert set(jobs) == {("retrain", "done"), ("retrain", "delayed"),
                         ("switch_backbone", "delayed")}
    assert jobs[("retrain", "done")].cursor == 41
    assert jobs[("switch_backbone", "delayed")].params["backbone"] == "efficientnet-lite1"
