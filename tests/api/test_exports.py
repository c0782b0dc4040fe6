"""Export jobs: started in any format, written in the background (never in the request),
polled, downloaded; one at a time per project; impossible exports refused at once."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from labeler.insights import export_jobs, exports
from labeler.training.models import Job
from labeler.webhooks.services import create_webhook

from .. import lead_fixtures
from ..conftest import wait_for
from .conftest import client_for
from .receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def exports_root(settings, tmp_path):
    settings.EXPORTS_ROOT = tmp_path / "exports"
    return settings.EXPORTS_ROOT


def test_started_polled_downloaded(api_world):
    project, lead = api_world.own, client_for(api_world, "lead")
    base = f"/api/v1/projects/{project.pk}/exports/"
    started = lead.post(base, {"format": "csv"}, format="json")
    assert started.status_code == 202
    job = started.json()
    assert job["status"] == "queued" and job["download_url"] is None
    assert not list(export_jobs.export_path(Job.objects.get(pk=job["id"])).parent.glob("*"))
    busy = lead.post(base, {"format": "json"}, format="json")
    assert busy.status_code == 409 and "already running" in busy.json()["error"]
    early = lead.get(f"{base}{job['id']}/download/")
    assert early.status_code == 409 and "queued" in early.json()["error"]

    assert export_jobs.write(job["id"]) == "done"  # the web task's body
    polled = lead.get(f"{base}{job['id']}/").json()
    assert polled["status"] == "done" and polled["download_url"].endswith("/download/")
    got = lead.get(polled["download_url"])
    assert got.status_code == 200 and got["Content-Type"].startswith("text/csv")
    assert "attachment" in got["Content-Disposition"]
    assert b"".join(got.streaming_content) == b"".join(exports.export(project, "csv"))
    assert [j["id"] for j in lead.get(base).json()] == [job["id"]]


def test_every_format_once_a_model_exists(api_world):
    project, lead = api_world.own, client_for(api_world, "lead")
    refused = lead.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "model"},
                        format="json")
    assert refused.status_code == 409 and "No trained model" in refused.json()["error"]
    items = lead_fixtures.make_items(project, 30)
    truth = lead_fixtures.embed(project, items, project.backbone)
    lead_fixtures.label(project, items[:15], truth, api_world.users["lead"], audit_every=0)
    lead_fixtures.retrain(project)
    for fmt in ("csv", "json", "coco", "predictions", "model", "coco-predictions"):
        job = lead.post(f"/api/v1/projects/{project.pk}/exports/", {"format": fmt},
                        format="json").json()
        assert export_jobs.write(job["id"]) == "done", fmt
        body = b"".join(lead.get(f"/api/v1/projects/{project.pk}/exports/{job['id']}/download/")
                        .streaming_content)
        if fmt == "model":
            assert "head.joblib" in zipfile.ZipFile(io.BytesIO(body)).namelist()
        elif fmt in ("json", "coco", "coco-predictions"):
            json.loads(body)
        else:
            assert body.count(b"\n") >= 31, fmt  # a header and a line per item


def test_old_files_are_pruned(api_world, settings):
    settings.LABELER_EXPORTS_KEPT = 2
    project, lead = api_world.own, client_for(api_world, "lead")
    ids = []
    for _ in range(3):
        ids.append(lead.post(f"/api/v1/projects/{project.pk}/exports/", {"format": "csv"},
                             format="json").json()["id"])
        export_jobs.write(ids[-1])
    gone = lead.get(f"/api/v1/projects/{project.pk}/exports/{ids[0]}/download/")
    assert gone.status_code == 409 and "replaced" in gone.json()["error"]
    assert lead.get(f"/api/v1/projects/{project.pk}/exports/{ids[2]}/download/").status_code == 200


@pytest.mark.parametrize("body", [{}, {"format": "xml"}, {"format": "csv", "version": 0},
                                  {"format": "csv", "unlabeled": "maybe"}])
def test_bad_requests(api_world, body):
    answer = client_for(api_world, "lead").post(
        f"/api/v1/projects/{api_world.own.pk}/exports/", body, format="json")
    assert answer.status_code == 400 and answer.json()["error"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_real_worker_writes_it_and_webhooks_announce(worker_factory, make_user, project_factory,
                                                     add_images, settings, exports_root):
    """Embedding (embedding.done) and an export (export.ready) through a real Celery worker."""
    settings.LABELER_ALLOW_PRIVATE_URLS = True
    lead = make_user("lead")
    project = project_factory("Exported", lead=lead)
    with Receiver(script=[(200, {})]) as receiver:
        create_webhook(project, receiver.url, ["embedding.done", "export.ready"])
        worker_factory(LABELER_ALLOW_PRIVATE_URLS="1", LABELER_EXPORTS_ROOT=str(exports_root))
        from labeler.training.services import request_embedding

        add_images(project, 3)
        request_embedding(project)

        def events() -> list[str]:
            return [json.loads(r["body"])["event"] for r in receiver.requests]

        wait_for(lambda: "embedding.done" in events(), 180, 0.5, "embedding.done")
        job = export_jobs.start_export(project, "folders")  # queued at once (autocommit)
        wait_for(lambda: "export.ready" in events(), 60, 0.5, "export.ready")
    ready = next(json.loads(r["body"]) for r in receiver.requests
                 if json.loads(r["body"])["event"] == "export.ready")
    assert ready["data"]["export"] == job.pk and ready["data"]["format"] == "folders"
    job.refresh_from_db()
    assert job.status == "done" and export_jobs.file_of(job) is not None
