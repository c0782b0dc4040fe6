"""The COCO exports checked with pycocotools (the tool a lead loads them with), and
``export_labels --out -`` into a pipe its reader closes early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from .conftest import REPO, _test_database_url
from .test_insights_views import _content, world  # noqa: F401 - the shared project fixture

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _download(client, project, fmt: str, query: str = "") -> bytes:
    r = client.get(reverse("insights:export", args=[project.pk, fmt]) + query)
    assert r.status_code == 200, r
    return _content(r)


def _coco(path: Path) -> COCO:
    return COCO(str(path))


def test_coco_loads_evaluates_and_masks(world, client, tmp_path):  # noqa: F811
    project = world["project"]
    client.force_login(world["lead"])
    gt_path = tmp_path / "coco.json"
    gt_path.write_bytes(_download(client, project, "coco"))
    gt = _coco(gt_path)
    assert len(gt.getImgIds()) == 24 and len(gt.getAnnIds()) == 18
    data = json.loads(gt_path.read_text())
    assert [lic["id"] for lic in data["licenses"]] == [1]
    assert {im["license"] for im in data["images"]} == {1}
    # annToMask: the whole image, for every annotation that claims a segmentation.
    for ann in gt.loadAnns(gt.getAnnIds()):
        img = gt.imgs[ann["image_id"]]
        mask = gt.annToMask(ann)
        assert mask.shape == (img["height"], img["width"]) and mask.all()
        assert ann["area"] == img["width"] * img["height"] == int(mask_utils.area(
            gt.annToRLE(ann)))
        assert ann["iscrowd"] == 0 and isinstance(ann["attributes"]["is_audit"], bool)
    # The audit flag matches the database.
    from labeler.annotations.models import Annotation

    audit = set(Annotation.objects.filter(is_audit=True).values_list("item_id", flat=True))
    assert {a["image_id"] for a in data["annotations"] if a["attributes"]["is_audit"]} == audit

    pred_path = tmp_path / "pred.json"
    pred_path.write_bytes(_download(client, project, "coco-predictions"))
    results = json.loads(pred_path.read_text())
    assert len(results) == 24 * 3  # every embedded image, one score per class
    assert set(results[0]) >= {"image_id", "category_id", "bbox", "score"}
    dt = gt.loadRes(str(pred_path))
    scores: dict[int, float] = {}
    for r in results:
        scores[r["image_id"]] = scores.get(r["image_id"], 0.0) + r["score"]
    assert np.allclose(list(scores.values()), 1.0, atol=1e-3)  # probabilities per image

    stats = {}
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        stats[iou_type] = ev.stats
    ap, ap50, ap75 = stats["bbox"][:3]
    # Whole-image boxes overlap exactly: AP is the same at every IoU threshold, and the head
    # separates the three synthetic clusters.
    assert ap == pytest.approx(ap50) == pytest.approx(ap75)
    assert ap > 0.5
    assert stats["segm"][0] == pytest.approx(ap)


def test_coco_file_names_resolve_in_the_folders_zip(world, client, tmp_path):  # noqa: F811
    project = world["project"]
    client.force_login(world["lead"])
    data = json.loads(_download(client, project, "coco", "?unlabeled=0"))
    assert len(data["images"]) == 18 and len(data["annotations"]) == 18
    (tmp_path / "f.zip").write_bytes(_download(client, project, "folders"))
    with zipfile.ZipFile(tmp_path / "f.zip") as zf:
        names = set(zf.namelist())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    by_image = {a["image_id"]: a for a in data["annotations"]}
    for im in data["images"]:
        assert im["file_name"] in names
        assert im["file_name"].split("/")[0] == cats[by_image[im["id"]]["category_id"]]
    # The matching predictions load against the labelled-only file (loadRes wants a subset).
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(data))
    pred = json.loads(_download(client, project, "coco-predictions", "?unlabeled=0"))
    assert {r["image_id"] for r in pred} == {im["id"] for im in data["images"]}
    COCO(str(gt_path)).loadRes(pred)
    bad = client.get(reverse("insights:export", args=[project.pk, "coco"]) + "?unlabeled=yes")
    assert bad.status_code == 400 and b"unlabeled" in bad.content


def test_export_labels_labeled_only(world, tmp_path):  # noqa: F811
    project = world["project"]
    out = tmp_path / "c.json"
    call_command("export_labels", project.name, "--format", "coco", "--labeled-only",
                 "--out", str(out))
    assert len(json.loads(out.read_text())["images"]) == 18
    call_command("export_labels", project.name, "--format", "coco", "--out", str(out))
    assert len(json.loads(out.read_text())["images"]) == 24


def test_export_to_a_closed_pipe_exits_quietly(transactional_db, project_factory, add_images,
                                              make_user, settings):
    project = project_factory("Piped", lead=make_user("lead"))
    add_images(project, 3)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="labeler.settings",
               DATABASE_URL=_test_database_url(), LABELER_MEDIA_ROOT=str(settings.MEDIA_ROOT),
               LABELER_EMBEDDINGS_ROOT=str(settings.EMBEDDINGS_ROOT),
               LABELER_MODELS_ROOT=str(settings.MODELS_ROOT))
    cmd = [sys.executable, "manage.py", "export_labels", "Piped", "--format", "csv", "--out", "-"]
    # Baseline: the full export reaches an open pipe.
    full = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=120)
    assert full.returncode == 0 and full.stdout.count(b"\n") == 4, full.stderr
    # The reader goes away before the first byte (as `| head -c 0` would).
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141
