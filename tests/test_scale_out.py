"""Several GPU machines (issue #16): three `celery -A worker.celery_app worker -Q gpu -c 1`
processes that share no directory (each its own working directory, HOME and cache; in common
only the broker and a real S3-compatible server, moto's) and a web worker + beat. 300 real
photos are imported from a bucket and embedded in parallel chunks; one GPU worker is SIGKILLed
mid-chunk; every item ends with exactly one embedding and the killed chunk is redone by another
worker; 20 labels give a model version whose suggestions are served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from labeler.training.models import EmbedChunk, ModelVersion, Status
from labeler.training.stores import store_for

from .conftest import REPO, _test_database_url, embedding_done, last_job, real_subset, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: A chunk silent this long is given to another worker (each beats every second).
STALE_SECONDS = 12


class GpuMachine:
    """One GPU worker as on its own machine: nothing of the web side's environment, its own
    folders; the broker URL and the object store are all it shares."""

    def __init__(self, name: str, home: Path, env: dict[str, str]) -> None:
        self.name, self.home = name, home
        home.mkdir(parents=True)
        self.log = home / "worker.log"
        machine_env = {k: v for k, v in os.environ.items()
                       if not k.startswith(("DJANGO", "DATABASE", "LABELER_", "CELERY", "REDIS"))}
        machine_env.update(env, HOME=str(home), LABELER_WORKER_CACHE_DIR=str(home / "cache"),
                           PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "gpu",
             "-c", "1", "-n", f"{name}@%h", "-l", "info", "--without-gossip", "--without-mingle"],
            cwd=home, env=machine_env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        return "ready" in self.log.read_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool process at once, as a lost machine."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def web_side(worker_factory, redis_url, labeler_dirs, settings):
    """The web host's background parts: a `web` queue worker and `celery beat` (the sweep)."""
    env = {"LABELER_EMBED_PARALLEL": "3", "LABELER_EMBED_CHUNK": "25",
           "LABELER_JOB_STALE_SECONDS": str(STALE_SECONDS), "LABELER_HEARTBEAT_SECONDS": "1",
           "LABELER_SWEEP_SECONDS": "2", "LABELER_EMBED_BATCH_SIZE": "5"}
    for name, value in env.items():  # this process plans too (the import's first step)
        setattr(settings, name, int(value))
    worker_factory(queues="web", concurrency=1, **env)
    beat_env = dict(os.environ, DJANGO_SETTINGS_MODULE="labeler.settings", REDIS_URL=redis_url,
                    DATABASE_URL=_test_database_url(), **env)
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "labeler", "beat", "-l", "info",
         "--schedule", str(labeler_dirs / "beat-schedule")],
        cwd=REPO, env=beat_env, stdout=(labeler_dirs / "beat.log").open("w"),
        stderr=subprocess.STDOUT, start_new_session=True)
    yield
    os.killpg(beat.pid, signal.SIGTERM)
    beat.wait(20)


@pytest.mark.django_db(transaction=True)
def test_three_gpu_workers_embed_in_parallel_and_survive_a_kill(
        s3_storage, web_side, redis_url, client, make_user, project_factory, tmp_path):
    server, bucket, storage_url = s3_storage
    photos = real_subset(tmp_path / "photos", classes=10, per_class=30)
    server.put_files(bucket, {f"photos/{p.parent.name}/{p.name}": p.read_bytes()
                              for p in photos.rglob("*.jpg")})
    machines = [GpuMachine(f"gpu{i}", tmp_path / f"machine{i}",
                           {"CELERY_BROKER_URL": redis_url, "REDIS_URL": redis_url, **server.env})
                for i in (1, 2, 3)]
    try:
        wait_for(lambda: all(m.ready() for m in machines), 120, 0.5, "three GPU workers")
        lead = make_user("lead")
        classes = sorted(p.name for p in photos.iterdir())
        project = project_factory("Scale out", classes=classes, lead=lead, retrain_every=20)
        call_command("import_images", project.name, f"s3://{bucket}/photos/")
        created = sorted(project.items.values_list("pk", flat=True))
        assert len(created) == 300

        victim = machines[0]

        def victim_holds_a_chunk() -> EmbedChunk | None:
            return EmbedChunk.objects.filter(job__project=project, status="running",
                                             worker__startswith=f"{victim.name}@").first()

        held = wait_for(victim_holds_a_chunk, 180, 0.2, f"{victim.name} to take a chunk")
        victim.kill()
        wait_for(lambda: embedding_done(project.pk, 300), 400, 1,
                 "the two other workers to embed all 300 photos")

        redone = EmbedChunk.objects.get(pk=held.pk)
        assert redone.status == "done" and redone.claims >= 2
        assert redone.worker.split("@")[0] in ("gpu2", "gpu3"), redone.worker
        job = last_job(project.pk, "embed")
        done_by = {w.split("@")[0] for w in
                   EmbedChunk.objects.filter(job=job).values_list("worker", flat=True)}
        assert {"gpu2", "gpu3"} <= done_by  # chunks ran on both survivors

        store = store_for(project.pk, project.backbone)
        stored = store._base_ids(store._manifest()).tolist()
        for path in store._chunk_files():
            with store._npz(path) as z:
                stored += z["ids"].tolist()
        assert storage_url.startswith("s3://") and store.loc.url.startswith(storage_url)
        assert sorted(stored) == created  # each item's embedding once
        ids, matrix = store.load()
        assert matrix.shape == (300, 1280) and np.isfinite(matrix.astype(np.float32)).all()

        client.force_login(lead)
        label_of = {c.name: c.pk for c in project.classes.all()}
        for _ in range(20):
            item = client.get(reverse("annotations:next", args=[project.pk])).json()["items"][0]
            folder = project.items.get(pk=item["id"]).original_name.split("/")[0]
            response = client.post(
                reverse("annotations:annotate", args=[project.pk]),
                data=json.dumps({"item": item["id"], "label": label_of[folder],
                                 "client_id": str(uuid.uuid4())}),
                content_type="application/json")
            assert response.status_code == 201
        version = wait_for(
            lambda: ModelVersion.objects.filter(project=project, labels_used=20).exclude(
                status=Status.RUNNING).first(), 300, 1, "a model version on 20 labels")
        assert version.status == Status.READY, version.error
        nxt = client.get(reverse("annotations:next", args=[project.pk])).json()["items"][0]
        assert nxt["suggestion"] is not None and 0 < nxt["suggestion"]["confidence"] <= 1
        # The GPU machines read the store through their own caches, nothing else on their disks.
        for machine in machines[1:]:
            assert "worker.tasks.embed_chunk" in machine.log.read_text()
        assert any(any((m.home / "cache").iterdir()) for m in machines[1:])
    finally:
        for machine in machines:
            machine.stop()
