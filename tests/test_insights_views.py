"""The lead's pages and exports: access rules, every export format, relabeling, thumbnails.

Fast: synthetic images with synthetic embeddings (the real-photo checks are in
test_insights_real.py), a model version made by the product's own retrain code.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image

from labeler.annotations.models import Annotation
from labeler.annotations.services import save_annotation
from labeler.insights import exports, maps
from labeler.items.importing import Importer, import_folder
from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.models import ModelVersion

from .conftest import jpeg_bytes

CLASSES = ["cat", "dog", "bird"]


def _content(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


@pytest.fixture
def world(db, make_user, project_factory):
    """A project with 24 images, 18 labeled (3 by an annotator), embeddings and one model."""
    from labeler.training.retrain import retrain_now
    from labeler.training.stores import store_for

    lead = make_user("lead")
    annotator = make_user("ann")
    outsider = make_user("outsider")
    project = project_factory("Pets", classes=CLASSES, lead=lead)
    set_member(project, annotator, Role.ANNOTATOR)
    importer = Importer(project)
    rng = np.random.default_rng(0)
    items = []
    for i in range(24):
        cls = i % 3
        colour = [(200, 40, 40), (40, 200, 40), (40, 40, 200)][cls]
        jitter = tuple(int(c + rng.integers(-30, 30)) for c in colour)
        name = f"{CLASSES[cls]}/photo {i}.jpg" if i != 5 else "dup/photo 4.jpg"
        items.append(importer.add(name, jpeg_bytes(jitter, (80 + i, 60))))
    classes = {c.name: c for c in project.classes.all()}
    for i, item in enumerate(items[:18]):
        user = annotator if i < 3 else lead
        save_annotation(item, classes[CLASSES[i % 3]], user, trigger_retrain=False,
                        seconds_spent=2.0 + i)
    # Synthetic embeddings: one cluster per class, so the head learns something.
    centers = rng.normal(size=(3, 64)).astype(np.float32) * 3
    X = np.stack([centers[i % 3] + rng.normal(size=64) for i in range(24)]).astype(np.float32)
    store_for(project.pk, project.backbone).append(np.array([it.pk for it in items]), X)
    result = retrain_now(project)
    assert result is not None and result["version"] == 1
    return {"project": project, "lead": lead, "annotator": annotator, "outsider": outsider,
            "items": items, "classes": classes, "X": X}


def _urls(project, item) -> list[tuple[str, str]]:
    pid = project.pk
    urls = [
        ("get", reverse("insights:dashboard", args=[pid])),
        ("get", reverse("insights:label_errors", args=[pid])),
        ("get", reverse("insights:map", args=[pid])),
        ("get", reverse("insights:item", args=[pid, item.pk])),
        ("post", reverse("insights:relabel", args=[pid, item.pk])),
    ]
    urls += [("get", reverse("insights:export", args=[pid, f])) for f in exports.FORMATS]
    return urls


def test_annotator_gets_403_and_outsider_404_everywhere(world, client):
    project, item = world["project"], world["items"][0]
    label = world["classes"]["dog"].pk
    for user, expected in [(world["annotator"], 403), (world["outsider"], 404)]:
        client.force_login(user)
        for method, url in _urls(project, item):
            if method == "post":
                r = client.post(url, json.dumps({"label": label}), content_type="application/json")
            else:
                r = client.get(url)
            assert r.status_code == expected, (user.username, url, r.status_code)
    # The map API too (checked after the rest: it must not compute anything for them).
    client.force_login(world["annotator"])
    assert client.get(reverse("insights:map_data", args=[project.pk])).status_code == 403
    assert Annotation.objects.filter(item=item, label_id=label).count() == 0
    # Anonymous: the login page.
    client.logout()
    r = client.get(reverse("insights:dashboard", args=[world["project"].pk]))
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]
    r = client.get(reverse("insights:export", args=[world["project"].pk, "csv"]))
    assert r.status_code == 302


def test_lead_pages_render(world, client):
    project = world["project"]
    client.force_login(world["lead"])
    r = client.get(reverse("insights:dashboard", args=[project.pk]))
    assert r.status_code == 200
    html = r.content.decode()
    assert 'id="chart-curve"' in html and "v1" in html and "Exports" in html
    assert "echarts.min.js" in html
    # every script and stylesheet comes from this server (no CDN): matched on the tags, since a
    # CSRF token or an image name may well contain the letters "cdn"
    sources = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    data = r.context["chart_data"]
    assert len(data["curve"]["points"]) == 1 and data["curve"]["points"][0]["n"] == 18
    assert data["confusion"]["classes"] == CLASSES
    people = {a["annotator"]: a for a in r.context["people"]["annotators"]}
    assert people["ann"]["labels"] == 3 and people["lead"]["labels"] == 15
    assert people["lead"]["labels_per_hour"] is not None
    for name in ("label_errors", "map"):
        assert client.get(reverse(f"insights:{name}", args=[project.pk])).status_code == 200
    r = client.get(reverse("insights:item", args=[project.pk, world["items"][0].pk]))
    assert r.status_code == 200 and b'id="proba"' in r.content
    # Project page links to the dashboard for leads only.
    r = client.get(reverse("projects:detail", args=[project.pk]))
    assert reverse("insights:dashboard", args=[project.pk]).encode() in r.content
    client.force_login(world["annotator"])
    r = client.get(reverse("projects:detail", args=[project.pk]))
    assert reverse("insights:dashboard", args=[project.pk]).encode() not in r.content


def test_static_plot_library_is_served_locally():
    from django.contrib.staticfiles import finders

    path = finders.find("insights/vendor/echarts/echarts.min.js")
    assert path and Path(path).stat().st_size < 5 * 1024 * 1024
    assert finders.find("insights/vendor/echarts/LICENSE")


def test_csv_json_and_coco_exports(world, client):
    client.force_login(world["lead"])
    r = client.get(reverse("insights:export", args=[world["project"].pk, "csv"]))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert "attachment" in r["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_content(r).decode())))
    assert len(rows) == 24
    assert list(rows[0]) == exports.CSV_COLUMNS
    labeled = [r for r in rows if r["label"]]
    assert len(labeled) == 18
    assert {r["label"] for r in labeled} == set(CLASSES)
    assert all(r["predicted"] in CLASSES for r in rows)
    # File names are unique even though two originals share a base name.
    assert len({r["file"] for r in rows}) == 24

    r = client.get(reverse("insights:export", args=[world["project"].pk, "json"]))
    data = json.loads(_content(r))
    assert data["format"] == "labeler-labels" and data["model"]["version"] == 1
    assert [c["name"] for c in data["classes"]] == CLASSES
    assert len(data["items"]) == 24
    first = data["items"][0]
    assert first["label"] == "cat" and first["annotations"][0]["annotator"] == "ann"
    assert first["prediction"]["label"] in CLASSES
    assert sum(1 for it in data["items"] if it["annotations"]) == 18

    r = client.get(reverse("insights:export", args=[world["project"].pk, "coco"]))
    coco = json.loads(_content(r))
    assert set(coco) >= {"info", "licenses", "images", "categories", "annotations"}
    cats = {c["id"]: c for c in coco["categories"]}
    assert {c["name"] for c in cats.values()} == set(CLASSES)
    assert all(set(c) >= {"id", "name", "supercategory"} for c in cats.values())
    images = {im["id"]: im for im in coco["images"]}
    assert len(images) == 24 and len(images) == len(coco["images"])
    for im in images.values():
        assert set(im) >= {"id", "file_name", "width", "height"}
        assert isinstance(im["width"], int) and im["width"] > 0
    anns = coco["annotations"]
    assert len(anns) == 18 and len({a["id"] for a in anns}) == 18
    for a in anns:
        assert set(a) >= {"id", "image_id", "category_id", "bbox", "area", "iscrowd"}
        assert a["image_id"] in images and a["category_id"] in cats
        im = images[a["image_id"]]
        assert a["bbox"] == [0, 0, im["width"], im["height"]]
        assert a["area"] == im["width"] * im["height"]
    # Category of each annotation is the item's label.
    labels = {it.pk: a.label.name for it in world["items"] for a in it.annotations.all()}
    for a in anns:
        assert cats[a["category_id"]]["name"] == labels[a["image_id"]]


def test_folders_zip_and_csv_round_trip_through_import(world, client, project_factory, tmp_path):
    client.force_login(world["lead"])
    pid = world["project"].pk
    rows = list(csv.DictReader(io.StringIO(
        _content(client.get(reverse("insights:export", args=[pid, "csv"]))).decode())))
    r = client.get(reverse("insights:export", args=[pid, "folders"]))
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    blob = _content(r)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert "labels.csv" in names
        images = [n for n in names if n != "labels.csv"]
        assert len(images) == 18 and {n.split("/")[0] for n in images} == set(CLASSES)
        assert zf.read("labels.csv").decode() == "".join(
            _content(client.get(reverse("insights:export", args=[pid, "csv"]))).decode())
        out = tmp_path / "unzipped"
        zf.extractall(out)
    (out / "labels.csv").unlink()
    # Import the exported folders into a fresh project: every label comes back.
    copy = project_factory("Copy", classes=[])
    report = import_folder(copy, out, labels_from_folders=True)
    assert len(report.created) == 18 and not report.errors
    imported = {
        it.sha256: it.annotations.get().label.name for it in Item.objects.filter(project=copy)
    }
    exported = {r["sha256"]: r["label"] for r in rows if r["label"]}
    assert imported == exported
    # And the CSV alone is enough to re-import: its file + label columns point into the zip.
    again = project_factory("Again", classes=[])
    importer = Importer(again)
    for row in rows:
        if row["label"]:
            data = (out / row["label"] / row["file"]).read_bytes()
            importer.add(row["file"], data, label=row["label"])
    assert {it.sha256: it.annotations.get().label.name
            for it in Item.objects.filter(project=again)} == exported


def test_predictions_and_model_bundle(world, client, tmp_path):
    client.force_login(world["lead"])
    r = client.get(reverse("insights:export", args=[world["project"].pk, "predictions"]))
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(_content(r).decode())))
    assert len(rows) == 24
    for row in rows:
        p = [float(row[f"p_{c}"]) for c in CLASSES]
        assert abs(sum(p) - 1) < 1e-3
        assert row["predicted"] == CLASSES[int(np.argmax(p))]
    version = ModelVersion.objects.get(project=world["project"])
    bundle = joblib.load(version.head_file)
    proba = bundle["head"].predict_proba(world["X"])
    first = [float(rows[0][f"p_{c}"]) for c in CLASSES]
    np.testing.assert_allclose(first, proba[0], atol=1e-3)

    r = client.get(reverse("insights:export", args=[world["project"].pk, "model"]))
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(_content(r))) as zf:
        assert set(zf.namelist()) == {"head.joblib", "classes.json", "README.md"}
        readme = zf.read("README.md").decode()
        assert "Featurizer(bundle[\"backbone\"])" in readme and "predict_proba" in readme
        names = json.loads(zf.read("classes.json"))
        (tmp_path / "head.joblib").write_bytes(zf.read("head.joblib"))
    bundle = joblib.load(tmp_path / "head.joblib")
    assert bundle["backbone"] == world["project"].backbone
    pred = bundle["head"].predict(world["X"][:3])
    assert [names[str(c)] for c in pred] == CLASSES
    # A version that does not exist: a clear 409, not a crash.
    r = client.get(reverse("insights:export", args=[world["project"].pk, "model"]) + "?version=9")
    assert r.status_code == 409


def test_model_exports_without_model_say_so(client, make_user, project_factory):
    lead = make_user("lead2")
    project = project_factory("Empty", lead=lead)
    client.force_login(lead)
    for fmt in ("model", "predictions"):
        r = client.get(reverse("insights:export", args=[project.pk, fmt]))
        assert r.status_code == 409 and b"No trained model" in r.content
    r = client.get(reverse("insights:export", args=[project.pk, "csv"]))
    assert _content(r).decode().strip() == ",".join(exports.CSV_COLUMNS)
    assert client.get(reverse("insights:export", args=[project.pk, "nope"])).status_code == 404
    assert client.get(reverse("insights:dashboard", args=[project.pk])).status_code == 200


def test_export_labels_command_and_admin_action(world, tmp_path, client, make_user):
    project = world["project"]
    for fmt in exports.FORMATS:
        out = tmp_path / f"export.{fmt}"
        call_command("export_labels", project.name, "--format", fmt, "--out", str(out))
        assert out.stat().st_size > 0
    coco = json.loads((tmp_path / "export.coco").read_text())
    assert len(coco["annotations"]) == 18
    with zipfile.ZipFile(tmp_path / "export.folders") as zf:
        assert len(zf.namelist()) == 19
    call_command("export_labels", str(project.pk), "--format", "csv", "--out", str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == (tmp_path / "export.csv").read_bytes()
    with pytest.raises(CommandError):
        call_command("export_labels", "no such project", "--format", "csv", "--out", "x")

    # The admin's "Export labels" action: a zip of CSV, JSON and COCO per selected project.
    admin = make_user("root", staff=True)
    client.force_login(admin)
    r = client.post(reverse("admin:projects_project_changelist"), {
        "action": "export_labels", "_selected_action": [world["project"].pk],
    })
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(_content(r))) as zf:
        names = zf.namelist()
        assert any(n.endswith("/coco.json") for n in names)
        csv_name = next(n for n in names if n.endswith("labels.csv"))
        assert len(zf.read(csv_name).decode().strip().splitlines()) == 25


def test_relabel_api(world, client):
    project, item = world["project"], world["items"][4]  # labeled "dog" by the lead
    dog, bird = world["classes"]["dog"], world["classes"]["bird"]
    url = reverse("insights:relabel", args=[project.pk, item.pk])
    client.force_login(world["lead"])
    r = client.post(url, json.dumps({"label": bird.pk}), content_type="application/json")
    assert r.status_code == 200 and r.json()["current"] == bird.pk
    assert Annotation.objects.get(item=item, annotator=world["lead"]).label == bird
    # Unlabeled item: the lead's label creates an annotation.
    fresh = world["items"][20]
    r = client.post(reverse("insights:relabel", args=[project.pk, fresh.pk]),
                    json.dumps({"label": dog.pk}), content_type="application/json")
    assert r.status_code == 201
    # A class of another project, and garbage.
    assert client.post(url, json.dumps({"label": 99999}),
                       content_type="application/json").status_code == 404
    assert client.post(url, "nope", content_type="application/json").status_code == 400
    # Two annotators agree on "cat"; the lead's correction still decides the item's label.
    other = world["items"][0]  # labeled "cat" by the annotator
    from django.contrib.auth import get_user_model

    second = get_user_model().objects.create_user("ann2", password="x")
    set_member(project, second, Role.ANNOTATOR)
    save_annotation(other, world["classes"]["cat"], second, trigger_retrain=False)
    r = client.post(reverse("insights:relabel", args=[project.pk, other.pk]),
                    json.dumps({"label": dog.pk}), content_type="application/json")
    assert r.status_code == 201 and r.json()["current"] == dog.pk and "warning" not in r.json()


def test_thumbnail_and_map_data(world, client, settings):
    item = world["items"][0]
    url = reverse("insights:thumb", args=[item.pk])
    client.force_login(world["outsider"])
    assert client.get(url).status_code == 404
    client.force_login(world["annotator"])  # members may see thumbnails
    r = client.get(url)
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    img = Image.open(io.BytesIO(_content(r)))
    assert max(img.size) <= 256
    cached = Path(settings.MEDIA_ROOT) / "thumbs" / str(item.project_id)
    assert len(list(cached.rglob("*.jpg"))) == 1
    assert client.get(url).status_code == 200

    project = world["project"]
    maps.compute_map(project)  # what the Celery task does
    client.force_login(world["lead"])
    payload = client.get(reverse("insights:map_data", args=[project.pk])).json()
    assert payload["status"] == "ready" and payload["n"] == 24
    import base64

    ids = np.frombuffer(base64.b64decode(payload["ids"]), dtype=np.int32)
    x = np.frombuffer(base64.b64decode(payload["x"]), dtype=np.uint16)
    label = np.frombuffer(base64.b64decode(payload["label"]), dtype=np.uint8)
    pred = np.frombuffer(base64.b64decode(payload["pred"]), dtype=np.uint8)
    assert sorted(ids.tolist()) == sorted(it.pk for it in world["items"])
    assert len(x) == 24 and x.max() == 65535 and x.min() == 0
    assert (label != maps.NONE).sum() == 18 and (pred != maps.NONE).sum() == 24
    # The colours follow the labels live: relabel one item and the payload changes.
    first = world["items"][0]
    save_annotation(first, world["classes"]["bird"], world["lead"], trigger_retrain=False)
    save_annotation(first, world["classes"]["bird"], world["outsider"], trigger_retrain=False)
    payload = client.get(reverse("insights:map_data", args=[project.pk])).json()
    label = np.frombuffer(base64.b64decode(payload["label"]), dtype=np.uint8)
    pos = ids.tolist().index(first.pk)
    assert payload["classes"][label[pos]]["name"] == "bird"


def test_map_is_recomputed_when_embeddings_change(world, monkeypatch):
    project = world["project"]
    first = maps.compute_map(project)
    assert maps.compute_map(project)["fingerprint"] == first["fingerprint"]
    from labeler.training.stores import store_for

    extra = Importer(project).add("new.jpg", jpeg_bytes((1, 2, 3)))
    store_for(project.pk, project.backbone).append(np.array([extra.pk]), world["X"][:1])
    queued = []
    monkeypatch.setattr(maps, "request_map", lambda p: queued.append(p.pk) or True)
    payload = maps.map_payload(project)
    assert payload["status"] == "computing" and queued == [project.pk]
    assert payload["n"] == 24  # the old map is shown meanwhile
    assert len(maps.compute_map(project)["ids"]) == 25  # what the map job stores
    assert not maps.is_pending(project)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_map_is_computed_by_a_real_celery_worker(celery_worker, client, make_user,
                                                 project_factory, add_images):
    from labeler.training.stores import store_for

    from .conftest import wait_for

    lead = make_user("maplead")
    project = project_factory("Map", lead=lead)
    items = add_images(project, 30)
    rng = np.random.default_rng(0)
    store_for(project.pk, project.backbone).append(
        np.array([it.pk for it in items]), rng.normal(size=(30, 16)).astype(np.float32))
    client.force_login(lead)
    url = reverse("insights:map_data", args=[project.pk])
    first = client.get(url).json()
    assert first["status"] == "computing"  # queued, not computed in the request

    def ready():
        payload = client.get(url).json()
        return payload if payload["status"] == "ready" else None

    payload = wait_for(ready, 90, 1, "the worker to compute the map")
    assert payload["n"] == 30 and payload["method"] == "tsne"
    log = celery_worker.read_text()
    assert "worker.tasks.project_map" in log and "labeler.insights.tasks.map_done" in log
