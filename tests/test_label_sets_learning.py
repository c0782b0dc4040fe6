"""Learning per label set on the shared embeddings: the product's retrain fits a head for every
set (softmax for single-choice, a binary head per tag for multi-label), stores each set's
predictions as suggestions, keeps per-set metrics (per-tag P/R/F1, mAP) on the version and puts
every head into the model download. Synthetic embeddings in which type and colour tags are
independent directions, so each set can be learnt only from its own labels."""

from __future__ import annotations

import io
import json
import zipfile

import joblib
import numpy as np
import pytest
from django.urls import reverse

from labeler.annotations.services import Answer, save_answers
from labeler.items.models import Prediction
from labeler.projects.label_sets import add_set
from labeler.projects.models import SetKind
from labeler.training.models import ModelVersion

from .label_set_fixtures import two_sets_fixture  # noqa: F401 (the two_sets fixture)
from .lead_fixtures import make_items, retrain

pytestmark = pytest.mark.django_db


def _world(project, types, colours, n=150, seed=0):
    from labeler.training.stores import store_for

    rng = np.random.default_rng(seed)
    items = make_items(project, n)[-n:]  # the fixture's own 6 images stay unembedded
    kind = rng.integers(0, 2, n)                  # shirt / shoe
    tags = rng.random((n, 3)) < 0.35              # red, blue, green, independently
    dirs = rng.normal(size=(5, 32)) * 3
    X = dirs[kind] + tags.astype(float) @ dirs[2:] + rng.normal(size=(n, 32))
    store_for(project.pk, project.backbone).append(
        np.array([i.pk for i in items]), X.astype(np.float32))
    type_ids = list(types.classes.order_by("order").values_list("pk", flat=True))
    tag_ids = list(colours.classes.order_by("order").values_list("pk", flat=True))
    truth = {it.pk: (type_ids[kind[k]], {tag_ids[j] for j in np.flatnonzero(tags[k])})
             for k, it in enumerate(items)}
    return items, truth


def test_retrain_learns_every_set_and_the_download_has_every_head(client, two_sets):
    project, types, colours, _, annotator = two_sets
    items, truth = _world(project, types, colours)
    labelled, held_out = items[:90], items[90:]
    # A third set, single-choice: "bright" exactly when the red tag is on (learnable too).
    bright = add_set(project, "bright", SetKind.SINGLE, ["dull", "bright"])
    dull_id, bright_id = bright.classes.order_by("order").values_list("pk", flat=True)
    red = colours.classes.get(name="red").pk
    for item in labelled:
        t, tags = truth[item.pk]
        save_answers(item, [Answer(types.pk, t), Answer(colours.pk, tags=tuple(tags)),
                            Answer(bright.pk, bright_id if red in tags else dull_id)],
                     annotator, trigger_retrain=False)
    result = retrain(project)
    sets = result["sets"]
    assert sorted(sets) == sorted([str(colours.pk), str(bright.pk)])
    assert sets[str(bright.pk)]["cv_accuracy"] > 0.8
    assert len(sets[str(bright.pk)]["cv_report"]["matrix"]) == 2
    colour = sets[str(colours.pk)]
    assert colour["kind"] == "multi" and len(colour["f1"]) == 3
    assert colour["map"] > 0.8  # the tags are learnable directions: far above the base rate
    assert all(0 <= f <= 1 for f in colour["f1"]) and colour["support"] == [
        sum(colours.classes.order_by("order")[j].pk in truth[i.pk][1] for i in labelled)
        for j in range(3)]

    # Suggestions for the colour set: every embedded item has rows; held-out tags mostly right.
    held = Prediction.objects.filter(label_set=colours, item__in=held_out)
    assert set(held.values_list("item_id", flat=True)) == {i.pk for i in held_out}
    predicted: dict[int, set] = {i.pk: set() for i in held_out}
    for item_id, label_id in held.values_list("item_id", "label_id"):
        if label_id is not None:
            predicted[item_id].add(label_id)
    exact = np.mean([predicted[i.pk] == truth[i.pk][1] for i in held_out])
    assert exact > 0.6, exact  # chance (right on all three tags) is about 0.3
    # The primary set keeps the items' own columns.
    held_out[0].refresh_from_db()
    assert held_out[0].predicted_class_id in set(types.classes.values_list("pk", flat=True))

    # The labeling API serves both sets' suggestions.
    client.force_login(annotator)
    served = client.get(reverse("annotations:next", args=[project.pk]) + "?n=3").json()["items"]
    assert all(i["suggestion"] and i["suggestions"] for i in served)

    # The model download carries every head, and they run.
    client.force_login(project.memberships.get(role="lead").user)
    r = client.get(reverse("insights:export", args=[project.pk, "model"]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content)))
    assert {"head.joblib", "classes.json", "label_sets.json", "README.md"} <= set(
        archive.namelist())
    bundle = joblib.load(io.BytesIO(archive.read("head.joblib")))
    head = bundle["sets"][str(colours.pk)]
    assert head["kind"] == "multi"
    assert head["classes"] == list(colours.classes.values_list("pk", flat=True))
    from labeler.training.stores import store_for

    ids, matrix = store_for(project.pk, project.backbone).load()
    assert head["head"].predict_proba(np.asarray(matrix[:5])).shape == (5, 3)
    assert json.loads(archive.read("label_sets.json"))[1]["kind"] == "multi"
    assert ModelVersion.objects.get(project=project, status="ready").metrics["sets"]

    # The dashboard per set: a selector, per-tag scores and mAP, a confusion matrix.
    url = reverse("insights:dashboard", args=[project.pk])
    main = client.get(url).content.decode()
    assert f'href="{url}?set={colours.pk}"' in main and "Label set:" in main
    tags_page = client.get(f"{url}?set={colours.pk}").content.decode()
    assert "Per-tag scores" in tags_page and 'id="kpi-map"' in tags_page
    assert f"{sets[str(colours.pk)]['map']:.3f}" in tags_page
    single = client.get(f"{url}?set={bright.pk}").content.decode()
    assert "Confusion matrix" in single and 'id="prf-table"' in single
    assert client.get(f"{url}?set=999999").status_code == 400
    assert client.get(f"{url}?set=abc").status_code == 400

    # Label errors of another single-choice set: its own head's, relabelled in its own set.
    errors = reverse("insights:label_errors", args=[project.pk])
    page = client.get(f"{errors}?set={bright.pk}&all=1")
    assert page.status_code == 200 and f"set={bright.pk}" in page.content.decode()
    assert client.get(f"{errors}?set={colours.pk}").status_code == 400
    target = labelled[0]
    relabel = client.post(reverse("insights:relabel", args=[project.pk, target.pk]),
                          data=json.dumps({"label": dull_id}), content_type="application/json")
    assert relabel.status_code == 201 and relabel.json()["current"] == dull_id  # a lead's label


def test_map_per_label_set(client, two_sets):
    from labeler.insights import maps

    project, types, colours, _, annotator = two_sets
    items, truth = _world(project, types, colours, n=40)
    for item in items[:20]:
        t, tags = truth[item.pk]
        save_answers(item, [Answer(types.pk, t), Answer(colours.pk, tags=tuple(tags))],
                     annotator, trigger_retrain=False)
    retrain(project)
    maps.compute_map(project, method="pca")
    client.force_login(project.memberships.get(role="lead").user)
    url = reverse("insights:map_data", args=[project.pk])
    data = client.get(f"{url}?set={colours.pk}").json()
    assert data["label_set"] == "colour" and [c["name"] for c in data["classes"]] == [
        "red", "blue", "green"]
    import base64

    labels = np.frombuffer(base64.b64decode(data["label"]), dtype=np.uint8)
    ids = np.frombuffer(base64.b64decode(data["ids"]), dtype=np.int32)
    by_id = dict(zip(ids.tolist(), labels.tolist(), strict=True))
    tag_ids = list(colours.classes.values_list("pk", flat=True))
    for item in items[:20]:
        tags = truth[item.pk][1]
        assert by_id[item.pk] == (tag_ids.index(min(tags)) if tags else 255)
    assert client.get(f"{url}?set=x").status_code == 400
    page = client.get(reverse("insights:map", args=[project.pk]) + f"?set={colours.pk}")
    assert f"?set={colours.pk}" in page.content.decode()
