"""The backbone check end to end with real parts: a Celery worker process, the real
EfficientNet-Lite0 and -Lite1 weights, and real clothing photos (skipped without ../shared)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from labeler.annotations.services import save_annotation
from labeler.items.importing import import_folder
from labeler.projects.models import Project
from labeler.projects.services import change_backbone
from labeler.training.models import BackboneCheck

from .conftest import embedding_done, real_subset, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LITE0, LITE1 = "efficientnet-lite0", "efficientnet-lite1"


@pytest.mark.django_db(transaction=True)
def test_check_runs_after_five_labels_per_class_and_the_switch_reuses_its_embeddings(
    worker_factory, make_user, project_factory, tmp_path
):
    photos = real_subset(tmp_path / "photos", classes=3, per_class=7)
    _, log = worker_factory(LABELER_CHECK_BACKBONES=f"{LITE0},{LITE1}",
                            LABELER_BACKBONE_CHECK_AUTO="1")
    lead = make_user("lead")
    project = project_factory("Real check", classes=sorted(p.name for p in photos.iterdir()),
                              lead=lead, retrain_every=15, backbone=LITE0)
    report = import_folder(project, photos)
    assert len(report.created) == 21
    wait_for(lambda: embedding_done(project.pk, 21), 180, 0.5, "the worker to embed 21 photos")

    # Five labels per class (15 of the 21 items): the 15th label's retrain requests the check.
    classes = {c.name: c for c in project.classes.all()}
    labeled = []
    for name, label in classes.items():
        for item in project.items.filter(original_name__startswith=f"{name}/").order_by("pk")[:5]:
            save_annotation(item, label, lead)
            labeled.append(item.pk)
    check = wait_for(
        lambda: BackboneCheck.objects.filter(project=project, status__in=["done", "failed"]).first(),
        240, 0.5, "the backbone check to finish",
    )
    assert check.status == "done", check.error
    result = check.result
    assert result["current"] == LITE0 and result["n_labels"] == 15 and result["n_classes"] == 3
    rows = {r["backbone"]: r for r in result["rows"]}
    assert set(rows) == {LITE0, LITE1}
    # Three clothing classes are easy for ImageNet features: far above the 1/3 majority rate.
    assert result["transfer_fits"] and result["majority_rate"] == pytest.approx(1 / 3, abs=1e-3)
    for r in rows.values():
        assert r["cv_accuracy"] > 0.6 and r["ci"][0] > 1 / 3 and np.isfinite(r["logme"])
    assert rows[LITE1]["images_per_s"] > 0 and rows[LITE0]["gain"] == 0.0
    assert result["recommended"] in (None, LITE1)
    assert check.done == check.total == 15
    assert "worker.tasks.check_backbones" in log.read_text()

    # Only the labeled items were embedded with lite1, into the store a switch to it fills.
    from labeler.training.stores import store_for

    assert sorted(store_for(project.pk, LITE1).ids().tolist()) == sorted(labeled)
    assert change_backbone(project, LITE1)
    wait_for(lambda: Project.objects.get(pk=project.pk).backbone == LITE1, 180, 0.5,
             "the switch to lite1")
    # The switch's chunks embed only the 6 items the check did not (15 already stored); each
    # line is logged twice (the logger's own handler and Celery's), hence the set.
    sent = set(re.findall(r"backbone=efficientnet-lite1: chunk (\S+ \S+) (\d+) to embed",
                          log.read_text()))
    assert sent and sum(int(n) for _, n in sent) == 6
