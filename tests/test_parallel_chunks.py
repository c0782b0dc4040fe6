"""Several chunks of one embedding job in flight at once (issue #16): claimed through the job
layer with owner tokens, a silent chunk claimed again by another worker, the first worker's late
report refused, every item stored once. The workers are played by hand here (no broker);
tests/test_scale_out.py runs the same with three real GPU worker processes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from labeler.items.models import Item
from labeler.training import chunks, embedding, services
from labeler.training.actions import do_start_job
from labeler.training.models import EmbedChunk, Job
from labeler.training.stores import store_for
from labeler.training.sweep import sweep

from .test_jobs import _items

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """What the web side sends (no broker): (task name, args)."""
    messages: list[tuple] = []
    monkeypatch.setattr(services, "send", lambda name, *args: messages.append((name, args)) or True)
    monkeypatch.setattr(embedding, "send", lambda name, *args: messages.append((name, args)) or True)
    return messages


def _work(message: dict, chunk: dict, worker: str) -> dict:
    """Embed a chunk as a GPU worker would (a vector per id that says which id it is: modulo
    2048, which float16 holds exactly)."""
    ids = np.array(chunk["ids"])
    store_for(message["project"], message["backbone"]).put(chunk["name"], ids,
                                                           np.repeat(ids[:, None] % 2048, 4, 1))
    return {"chunk": chunk["chunk"], "chunk_token": chunk["token"], "worker": worker, "rate": 5.0}


def _stored_rows(project_id: int, backbone: str) -> list[int]:
    """Every id stored, once per object that holds it (duplicates would show twice)."""
    store = store_for(project_id, backbone)
    ids = list(store._base_ids(store._manifest()).tolist())
    for path in store._chunk_files():
        with store._npz(path) as z:
            ids += z["ids"].tolist()
    return ids


def test_chunks_run_in_parallel_and_a_lost_one_is_redone_once(project_factory, settings, sent):
    settings.LABELER_EMBED_CHUNK = 4
    settings.LABELER_EMBED_PARALLEL = 3
    project = project_factory("Parallel")
    ids = _items(project, 14)
    job = do_start_job(project, "embed", params={"backbone": project.backbone})

    assert embedding.embed_next(job.pk) == "dispatched"
    first = [args for name, args in sent if name == "worker.tasks.embed_chunk"]
    assert len(first) == 3  # the in-flight limit, each chunk its own range and token
    ranges = [c["ids"] for _, c in first]
    assert sum(ranges, []) == ids[:12].tolist()
    assert len({c["token"] for _, c in first}) == 3
    assert embedding.next_chunk(job.pk) == "busy"

    (m_a, c_a), (m_b, c_b), (m_c, c_c) = first
    # Worker B finishes first: the cursor stays below chunk A, still running.
    assert embedding.chunk_done(job.pk, job.token, _work(m_b, c_b, "gpu-b")) == "dispatched"
    assert Job.objects.get(pk=job.pk).cursor == 0
    fourth = [args for name, args in sent if name == "worker.tasks.embed_chunk"][3]
    assert fourth[1]["ids"] == ids[12:].tolist()

    # Worker A dies mid-chunk (it wrote nothing): once silent, its chunk goes to another worker.
    EmbedChunk.objects.filter(pk=c_a["chunk"]).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.LABELER_JOB_STALE_SECONDS + 1))
    assert not chunks.alive(job.pk, job.token, c_a["chunk"], "not-its-token", "gpu-a")
    before = len(sent)
    sweep()
    redo = [args for name, args in sent[before:] if name == "worker.tasks.embed_chunk"]
    assert len(redo) == 1 and redo[0][1]["chunk"] == c_a["chunk"]
    assert redo[0][1]["token"] != c_a["token"] and redo[0][1]["name"] == c_a["name"]
    assert EmbedChunk.objects.get(pk=c_a["chunk"]).claims == 2

    # The dead worker's late heartbeat and report (it was only slow) change nothing...
    assert not chunks.alive(job.pk, job.token, c_a["chunk"], c_a["token"], "gpu-a")
    late = _work(m_a, c_a, "gpu-a")
    assert embedding.chunk_done(job.pk, job.token, late) == "ignored"
    # ...and the chunk it wrote is replaced by the redo, not added to.
    for message, chunk, worker in ((*redo[0], "gpu-c"), (m_c, c_c, "gpu-c"),
                                   (*fourth, "gpu-b")):
        embedding.chunk_done(job.pk, job.token, _work(message, chunk, worker))

    job.refresh_from_db()
    assert job.status == "done" and job.cursor == ids[-1] and job.done == job.total == 14
    done_by = dict(EmbedChunk.objects.filter(job=job).values_list("pk", "worker"))
    assert done_by[c_a["chunk"]] == "gpu-c" and done_by[c_b["chunk"]] == "gpu-b"
    rows = _stored_rows(project.pk, project.backbone)
    assert sorted(rows) == ids.tolist()  # every item exactly once (compacted by the finish)
    loaded_ids, emb = store_for(project.pk, project.backbone).load()
    assert (np.asarray(emb[:, 0], dtype=np.int64) == loaded_ids % 2048).all()


def test_a_report_without_the_chunks_token_changes_nothing(project_factory, settings, sent):
    settings.LABELER_EMBED_CHUNK = 5
    project = project_factory("Tokens")
    _items(project, 5)
    job = do_start_job(project, "embed", params={"backbone": project.backbone})
    message, chunk = embedding.next_chunk(job.pk)
    report = _work(message, chunk, "gpu")
    assert not embedding.record_chunk(job.pk, job.token, {**report, "chunk_token": "stolen"})
    assert not embedding.record_chunk(job.pk, "other-job-token", report)
    assert not embedding.record_chunk(job.pk, job.token, {"last_id": 99, "done": 5})  # old form
    assert EmbedChunk.objects.get(pk=chunk["chunk"]).status == "running"
    assert embedding.record_chunk(job.pk, job.token, report)
    assert not embedding.record_chunk(job.pk, job.token, report)  # a duplicate


def test_one_in_flight_by_default_as_make_run_has_one_worker(project_factory, settings, sent):
    settings.LABELER_EMBED_CHUNK = 2
    project = project_factory("Serial")
    _items(project, 6)
    job = do_start_job(project, "embed", params={"backbone": project.backbone})
    assert embedding.embed_next(job.pk) == "dispatched"
    assert len([n for n, _ in sent if n == "worker.tasks.embed_chunk"]) == 1
    assert Item.objects.filter(project=project).count() == 6


def test_progress_counts_the_chunks_on_their_workers(project_factory, settings, sent):
    from labeler.projects.views import status_payload

    settings.LABELER_EMBED_CHUNK = 4
    settings.LABELER_EMBED_PARALLEL = 2
    project = project_factory("Progress")
    _items(project, 8)
    job = do_start_job(project, "embed", params={"backbone": project.backbone})
    embedding.embed_next(job.pk)
    (_, a), (_, b) = [args for name, args in sent if name == "worker.tasks.embed_chunk"]
    assert chunks.alive(job.pk, job.token, a["chunk"], a["token"], "gpu-a", 3, 1.5)
    assert chunks.alive(job.pk, job.token, b["chunk"], b["token"], "gpu-b", 1, 2.0)
    shown = status_payload(project)["embedding"]
    assert (shown["done"], shown["total"], shown["images_per_second"]) == (4, 8, 3.5)
    assert shown["seconds_left"] == round(4 / 3.5)


def test_only_the_finish_that_counts_compacts(project_factory, settings, sent, monkeypatch):
    """Two reports may both find no chunk left: one finishes the job and compacts the store,
    the other changes nothing (two compactions at once could interleave their files)."""
    from worker.ml.embedding_store import EmbeddingStore

    compactions = []
    monkeypatch.setattr(EmbeddingStore, "compact", lambda self: compactions.append(self))
    project = project_factory("Finish")
    _items(project, 2)
    job = do_start_job(project, "embed", params={"backbone": project.backbone})
    stale_copy = Job.objects.select_related("project").get(pk=job.pk)
    assert embedding.finish(Job.objects.select_related("project").get(pk=job.pk)) == "done"
    assert embedding.finish(stale_copy) == "gone"
    assert len(compactions) == 1


def test_the_admin_shows_which_worker_did_each_chunk(admin_client, project_factory, settings,
                                                      sent):
    settings.LABELER_EMBED_CHUNK = 2
    project = project_factory("Admin chunks")
    _items(project, 2)
    job = do_start_job(project, "embed", params={"backbone": project.backbone})
    message, chunk = embedding.next_chunk(job.pk)
    assert embedding.record_chunk(job.pk, job.token, _work(message, chunk, "gpu7@host-b"))
    page = admin_client.get(f"/admin/training/job/{job.pk}/change/")
    assert page.status_code == 200 and "gpu7@host-b" in page.content.decode()
    assert b'name="chunks-0-worker"' not in page.content  # read-only: no form field
