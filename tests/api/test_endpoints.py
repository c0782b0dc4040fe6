"""What each endpoint does: projects, uploads, filters and keyset pages, idempotent labels,
bulk imports, predictions in and out, the queue's leases, the head's download; and bad input
answered with a 400 and a message."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeler.annotations.models import Annotation
from labeler.items.models import Item

from .. import lead_fixtures
from ..conftest import jpeg_bytes
from .conftest import client_for

pytestmark = pytest.mark.django_db


def test_create_project_then_change_its_settings(api_world):
    staff = client_for(api_world, "staff")
    made = staff.post("/api/v1/projects/", {"name": "Birds", "classes": ["owl", "tit"],
                                            "retrain_every": 20}, format="json")
    assert made.status_code == 201
    body = made.json()
    assert [c["name"] for c in body["classes"]] == ["owl", "tit"] and body["role"] == "lead"
    assert body["retrain_every"] == 20
    url = f"/api/v1/projects/{body['id']}/"
    assert staff.patch(url, {"audit_share": 0.2}, format="json").json()["audit_share"] == 0.2
    bad = staff.patch(url, {"query_strategy": "nope"}, format="json")
    assert bad.status_code == 400 and "strategy" in bad.json()["error"]
    again = staff.post("/api/v1/projects/", {"name": "Birds", "classes": ["a"]}, format="json")
    assert again.status_code == 400 and "name" in again.json()["fields"]


def test_upload_files_and_a_zip(api_world):
    lead = client_for(api_world, "lead")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/one.jpg", jpeg_bytes((1, 2, 3)))
        z.writestr("b/two.png", b"not an image")
    files = [SimpleUploadedFile("x.jpg", jpeg_bytes((200, 1, 1)), "image/jpeg"),
             SimpleUploadedFile("set.zip", archive.getvalue(), "application/zip"),
             SimpleUploadedFile("bad.jpg", b"<html>", "image/jpeg")]
    answer = lead.post(f"/api/v1/projects/{api_world.own.pk}/items/upload/", {"files": files},
                       format="multipart")
    assert answer.status_code == 201
    report = answer.json()
    assert report["created"] == 2 and len(report["item_ids"]) == 2
    assert set(report["errors"]) == {"set.zip:b/two.png", "bad.jpg"}
    image = lead.get(f"/api/v1/projects/{api_world.own.pk}/items/{report['item_ids'][0]}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    none = lead.post(f"/api/v1/projects/{api_world.own.pk}/items/upload/", {}, format="multipart")
    assert none.status_code == 400


def test_filters_and_keyset_pages_cover_every_item_once(api_world, add_images):
    project, lead = api_world.own, client_for(api_world, "lead")
    add_images(project, 22)
    items = list(project.items.order_by("pk"))
    cat = project.classes.first()
    for item in items[:5]:
        lead.post(f"/api/v1/projects/{project.pk}/annotations/", {"item": item.pk,
                  "label": cat.pk}, format="json")
    Item.objects.filter(pk__in=[i.pk for i in items[5:9]]).update(
        predicted_class=cat, predicted_confidence=0.9)
    seen, url = [], f"/api/v1/projects/{project.pk}/items/?page_size=4"
    while url:
        page = lead.get(url).json()
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert seen == [i.pk for i in items]

    def ids(query: str) -> list[int]:
        return [r["id"] for r in lead.get(
            f"/api/v1/projects/{project.pk}/items/?{query}&page_size=1000").json()["results"]]

    assert ids("labeled=true") == [i.pk for i in items[:5]]
    assert len(ids("labeled=false")) == len(items) - 5
    assert ids(f"label={cat.pk}") == [i.pk for i in items[:5]]
    assert ids(f"predicted_class={cat.pk}&confidence_min=0.8&confidence_max=0.95") == [
        i.pk for i in items[5:9]]
    assert ids("audit=true") == []
    for bad in ("labeled=maybe", "confidence_min=2", "label=0", "label=99999999999999999999",
                "cursor=bogus", "cursor=cD0xMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMw%3D%3D"):
        answer = lead.get(f"/api/v1/projects/{project.pk}/items/?{bad}")
        assert answer.status_code == 400, bad
        assert answer.json()["error"]


def test_labels_are_idempotent_with_a_client_id(api_world):
    project, annotator = api_world.own, client_for(api_world, "annotator")
    item, label = project.items.first(), project.classes.first()
    body = {"item": item.pk, "label": label.pk, "client_id": str(uuid.uuid4())}
    first = annotator.post(f"/api/v1/projects/{project.pk}/annotations/", body, format="json")
    again = annotator.post(f"/api/v1/projects/{project.pk}/annotations/", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False
    assert Annotation.objects.filter(item=item).count() == 1


def test_bulk_labels_by_id_or_name_all_or_none(api_world):
    project, lead = api_world.own, client_for(api_world, "lead")
    items = list(project.items.order_by("pk"))
    cat, dog = project.classes.all()[:2]
    rows = [{"item": items[0].pk, "label": cat.pk}, {"item": items[1].pk, "class_name": "dog"}]
    bad = lead.post(f"/api/v1/projects/{project.pk}/annotations/bulk/",
                    {"annotations": [*rows, {"item": items[2].pk, "class_name": "zebra"}]},
                    format="json")
    assert bad.status_code == 400 and "2" in bad.json()["fields"]["annotations"]
    assert not Annotation.objects.exists()
    done = lead.post(f"/api/v1/projects/{project.pk}/annotations/bulk/", {"annotations": rows},
                     format="json")
    assert done.json() == {"created": 2, "updated": 0}
    listed = lead.get(f"/api/v1/projects/{project.pk}/annotations/?source=import").json()
    assert {(a["item"], a["label"]) for a in listed["results"]} == {
        (items[0].pk, cat.pk), (items[1].pk, dog.pk)}


def test_imported_predictions_are_the_queues_suggestions(api_world):
    project = api_world.own
    lead, annotator = client_for(api_world, "lead"), client_for(api_world, "annotator")
    dog = project.classes.all()[1]
    rows = [{"item": i.pk, "label": dog.pk, "confidence": 0.75} for i in project.items.all()]
    assert lead.post(f"/api/v1/projects/{project.pk}/predictions/", {"predictions": rows},
                     format="json").json()["updated"] == 3
    served = annotator.post(f"/api/v1/projects/{project.pk}/next/", {"n": 2}, format="json")
    items = served.json()["items"]
    assert len(items) == 2
    assert all(i["suggestion"] == {"label": dog.pk, "confidence": 0.75} for i in items)
    # Leased: another member asking gets the one left, never the same ones.
    other = client_for(api_world, "lead").post(f"/api/v1/projects/{project.pk}/next/",
                                               {"n": 3}, format="json").json()["items"]
    assert {i["id"] for i in other}.isdisjoint({i["id"] for i in items}) and len(other) == 1


def test_current_models_probabilities_and_head(api_world, settings):
    project, lead = api_world.own, client_for(api_world, "lead")
    items = lead_fixtures.make_items(project, 60)
    truth = lead_fixtures.embed(project, items, project.backbone)
    lead_fixtures.label(project, items[:30], truth, api_world.users["lead"], audit_every=0)
    lead_fixtures.retrain(project)
    page = lead.get(f"/api/v1/projects/{project.pk}/predictions/?page_size=100").json()
    assert page["model_version"] == 1
    rows = {r["item"]: r for r in page["results"]}
    embedded = [rows[i.pk] for i in items]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in embedded)
    assert all(r["predicted_class"] == int(max(r["probabilities"],
                                               key=r["probabilities"].get)) for r in embedded)
    classes = [c.pk for c in project.classes.order_by("order", "pk")]
    right = sum(r["predicted_class"] == classes[t] for r, t in zip(embedded, truth, strict=True))
    assert right / len(items) > 0.6  # well above chance (1/3) on these clusters
    not_embedded = [r for i, r in rows.items() if i not in {x.pk for x in items}]
    assert all(r["probabilities"] is None for r in not_embedded)
    versions = lead.get(f"/api/v1/projects/{project.pk}/model-versions/").json()
    assert versions[0]["status"] == "ready" and "cv_accuracy" in versions[0]["metrics"]
    head = lead.get(f"/api/v1/projects/{project.pk}/model-versions/1/head/")
    assert head.status_code == 200 and head["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(head.streaming_content))) as z:
        assert {"head.joblib", "classes.json", "README.md"} <= set(z.namelist())


@pytest.mark.parametrize("body", [
    b"{not json", b"[1, 2]", b'{"item": 1e400, "label": 1}', b'{"item": "\\ud800", "label": 1}',
    b'{"item": 99999999999999999999999, "label": 1}', b'{"item": [1], "label": {}}',
    b"[" * 5000 + b"]" * 5000, "{\"item\": \"\u00e9\"}".encode("latin-1"),
])
def test_bad_bodies_are_400_with_a_message(api_world, body):
    answer = client_for(api_world, "lead").generic(
        "POST", f"/api/v1/projects/{api_world.own.pk}/annotations/", body,
        content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["error"]


def test_unknown_and_huge_ids_are_404_json(api_world):
    lead = client_for(api_world, "lead")
    for url in (f"/api/v1/projects/{2**63}/", "/api/v1/projects/0/",
                f"/api/v1/projects/{api_world.own.pk}/items/{2**64}/",
                f"/api/v1/projects/{api_world.own.pk}/model-versions/{2**70}/",
                "/api/v1/projects/abc/", "/api/v1/nothing/"):
        answer = lead.get(url)
        assert answer.status_code == 404, url
        assert answer.json()["error"]


def test_import_by_url_fetches_safely(api_world, settings):
    from .receiver import Receiver

    project, lead = api_world.own, client_for(api_world, "lead")
    url = f"/api/v1/projects/{project.pk}/items/import-urls/"
    with Receiver() as server:
        settings.LABELER_ALLOW_PRIVATE_URLS = False
        refused = lead.post(url, {"urls": [server.url]}, format="json").json()
        assert refused["created"] == 0 and "private" in refused["errors"][server.url]
        assert server.requests == []
    image = jpeg_bytes((9, 99, 199))
    settings.LABELER_ALLOW_PRIVATE_URLS = True  # an admin's choice: the server is local here
    with Receiver(script=[(200, {}, image), (404, {}, b"no"), (200, {}, image)]) as server:
        base = f"http://127.0.0.1:{server.port}"
        report = lead.post(url, {"urls": [f"{base}/a/photo.jpg", f"{base}/missing.png",
                                          f"{base}/again.jpg"]}, format="json").json()
    assert report["created"] == 1 and len(report["duplicates"]) == 1
    assert "404" in report["errors"][f"{base}/missing.png"]
    assert Item.objects.get(pk=report["item_ids"][0]).original_name == "127.0.0.1/photo.jpg"
    bad = lead.post(url, {"urls": ["not a url"]}, format="json")
    assert bad.status_code == 400 and "urls" in bad.json()["fields"]


def test_classes_and_members(api_world):
    project, lead = api_world.own, client_for(api_world, "lead")
    base = f"/api/v1/projects/{project.pk}/"
    made = lead.post(base + "classes/", {"name": "fish"}, format="json")
    assert made.status_code == 201 and made.json()["hotkey"] == "4"
    dup = lead.post(base + "classes/", {"name": "fish"}, format="json")
    assert dup.status_code == 400 and "already" in dup.json()["error"]
    cid = made.json()["id"]
    assert lead.patch(base + f"classes/{cid}/", {"name": "trout", "hotkey": "t"},
                      format="json").json() == {**made.json(), "name": "trout", "hotkey": "t"}
    assert lead.patch(base + f"classes/{cid}/", {"hotkey": "s"},
                      format="json").status_code == 400  # s is the skip key
    stranger = api_world.users["stranger"]
    added = lead.post(base + "members/", {"username": "stranger", "role": "annotator"},
                      format="json")
    assert added.status_code == 201 and added.json()["role"] == "annotator"
    assert client_for(api_world, "stranger").get(base).json()["role"] == "annotator"
    assert lead.patch(base + f"members/{stranger.pk}/", {"role": "lead"},
                      format="json").json()["role"] == "lead"
    assert lead.delete(base + f"members/{stranger.pk}/").status_code == 204
    assert client_for(api_world, "stranger").get(base).status_code == 404
    unknown = lead.post(base + "members/", {"username": "ghost", "role": "lead"}, format="json")
    assert unknown.status_code == 400 and "username" in unknown.json()["fields"]


def test_renaming_onto_another_projects_name_is_a_400(api_world):
    staff = client_for(api_world, "staff")
    answer = staff.patch(f"/api/v1/projects/{api_world.own.pk}/",
                         {"name": api_world.other.name}, format="json")
    assert answer.status_code == 400 and "already" in answer.json()["error"]
    same = staff.patch(f"/api/v1/projects/{api_world.own.pk}/",
                       {"name": api_world.own.name}, format="json")
    assert same.status_code == 200
