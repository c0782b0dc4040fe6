"""The whole loop with real parts: Redis, a Celery worker process, the pretrained backbone,
real photos: import -> embeddings -> 10 labels -> retrain -> ModelVersion -> next pick."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse

from labeler.items.importing import import_folder
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.models import ModelVersion, Status
from labeler.training.services import retraining

from .conftest import embedding_done, real_subset, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_import_embed_label_retrain_pick(celery_worker, client, make_user, project_factory, tmp_path):
    photos = real_subset(tmp_path / "photos", classes=4, per_class=10)
    truth = {f"{p.parent.name}/{p.name}": p.parent.name for p in photos.rglob("*.jpg")}
    lead = make_user("lead")
    project = project_factory(
        "Integration", classes=sorted({c for c in truth.values()}), lead=lead, retrain_every=10,
        audit_share=0.1,
    )
    annotator = make_user("ann")
    set_member(project, annotator, Role.ANNOTATOR)

    report = import_folder(project, photos)
    assert len(report.created) == 40 and not report.errors

    # The import queued the embedding task; the worker embeds all 40 photos.
    wait_for(lambda: embedding_done(project.pk, 40), 240, 1, "the worker to embed 40 photos")
    from labeler.training.stores import store_for

    ids, matrix = store_for(project.pk, project.backbone).load()
    assert sorted(ids.tolist()) == sorted(report.created)
    assert matrix.shape == (40, 1280) and matrix.dtype == np.float16
    assert np.isfinite(matrix.astype(np.float32)).all()

    client.force_login(annotator)
    classes = {c.name: c.pk for c in project.classes.all()}
    labeled = set()
    for _ in range(10):
        item = client.get(reverse("annotations:next", args=[project.pk])).json()["items"][0]
        assert item["id"] not in labeled
        name = project.items.get(pk=item["id"]).original_name
        response = client.post(
            reverse("annotations:annotate", args=[project.pk]),
            data=json.dumps({"item": item["id"], "label": classes[truth[name]],
                             "client_id": str(uuid.uuid4())}),
            content_type="application/json",
        )
        assert response.status_code == 201
        labeled.add(item["id"])

    # The 10th label queued a retrain; the worker records a ModelVersion.
    version = wait_for(
        lambda: ModelVersion.objects.filter(project=project, status__in=[Status.READY, Status.FAILED]).first(),
        180, 1, "a model version",
    )
    assert version.status == Status.READY, version.error
    assert version.labels_used == 10
    assert Path(version.head_file).exists()
    assert not retraining(project)

    nxt = client.get(reverse("annotations:next", args=[project.pk])).json()["items"][0]
    assert nxt["id"] not in labeled
    assert nxt["suggestion"] is not None and 0 < nxt["suggestion"]["confidence"] <= 1
    from labeler.items.models import UNRANKED

    ranked = project.items.filter(annotation_count=0, query_rank__lt=UNRANKED).count()
    assert ranked == 30

    log = celery_worker.read_text()
    assert "worker.tasks.embed_chunk" in log and "worker.tasks.retrain" in log
    assert "labeler.training.tasks.retrain_done" in log  # the worker reported to the web side


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_embedding_resumes_without_duplicates(
    worker_factory, project_factory, tmp_path
):
    """SIGKILL the worker in the middle of embedding; a new worker finishes the job: exactly one
    embedding per item, none missing, nothing embedded twice."""
    import os
    import signal

    from labeler.training.stores import store_for

    photos = real_subset(tmp_path / "photos", classes=4, per_class=10)
    project = project_factory("Crash", classes=["a", "b", "c", "d"])
    env = {"LABELER_EMBED_CHUNK": "4", "LABELER_BROKER_VISIBILITY_TIMEOUT": "3"}
    proc, log = worker_factory(**env)
    report = import_folder(project, photos)  # queues embedding on commit
    store = store_for(project.pk, project.backbone)
    wait_for(lambda: len(store) >= 8, 180, 0.2, "a few chunks to be embedded")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    at_kill = len(store)
    assert 8 <= at_kill < 40, at_kill

    worker_factory(**env)  # "restarted": the unacknowledged chunk is redelivered
    wait_for(lambda: embedding_done(project.pk), 240, 0.5, "the new worker to finish embedding")
    ids, matrix = store.load()
    assert sorted(ids.tolist()) == sorted(report.created)
    assert len(set(ids.tolist())) == len(ids) == 40
    assert np.isfinite(matrix.astype(np.float32)).all()
    assert "worker.tasks.embed_chunk" in log.read_text()
