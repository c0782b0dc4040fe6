"""The map's "only items the model disagrees with" shows the label-errors page's out-of-fold
candidates, and its counter counts what is shown (issue 17.4)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from django.urls import reverse

from labeler.insights import maps, services
from labeler.training.models import ModelVersion

from .lead_fixtures import three_versions

pytestmark = pytest.mark.django_db


@pytest.fixture
def mapped(make_user, project_factory):
    lead = make_user("lead")
    project = project_factory("Mapped", classes=["cat", "dog", "bird"], lead=lead)
    world = three_versions(project, lead)
    maps.compute_map(project, method="pca")
    return {"project": project, "lead": lead, **world}


def _decode(payload: dict, key: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload[key]), dtype=dtype)


def _disagreeing(payload: dict) -> set[int]:
    ids = _decode(payload, "ids", np.int32)
    return set(ids[_decode(payload, "disagree", np.uint8) == 1].tolist())


def test_disagreements_are_the_label_error_candidates(mapped, client):
    project = mapped["project"]
    client.force_login(mapped["lead"])
    payload = client.get(reverse("insights:map_data", args=[project.pk])).json()
    shown = _disagreeing(payload)
    issues = services.label_issues(project)
    listed = {r["item"].pk for r in issues["issues"]}
    v3 = ModelVersion.objects.get(project=project, number=3)
    assert issues["flagged"] == v3.metrics["label_issues_n"] <= 200  # all of them are listed
    assert shown == listed and len(shown) == payload["disagree_n"] == issues["flagged"] > 0
    assert payload["oof_source"] == "model v3"
    # Not the in-sample disagreement the map used before (the head saw those labels).
    ids = _decode(payload, "ids", np.int32)
    label = _decode(payload, "label", np.uint8)
    pred = _decode(payload, "pred", np.uint8)
    in_sample = set(ids[(label != 255) & (pred != 255) & (label != pred)].tolist())
    assert in_sample != shown


def test_a_reviewed_item_leaves_the_map_as_it_leaves_the_list(mapped, client):
    project, lead = mapped["project"], mapped["lead"]
    client.force_login(lead)
    url = reverse("insights:map_data", args=[project.pk])
    before = _disagreeing(client.get(url).json())
    item = min(before)
    given = services.current_labels(project)[0][item]
    r = client.post(reverse("insights:relabel", args=[project.pk, item]),
                    json.dumps({"label": given}), content_type="application/json")  # "keep"
    assert r.status_code in (200, 201)
    after = _disagreeing(client.get(url).json())
    assert after == before - {item}
    assert item not in {r["item"].pk for r in services.label_issues(project)["issues"]}


def test_without_stored_predictions_they_are_computed_as_the_list_does(mapped, client):
    from worker.artifacts import oof_path

    project = mapped["project"]
    for v in ModelVersion.objects.filter(project=project):
        oof_path(v.head_file).unlink()
    client.force_login(mapped["lead"])
    payload = client.get(reverse("insights:map_data", args=[project.pk])).json()
    assert payload["oof_source"] == "computed now" and payload["disagree_n"] > 0
