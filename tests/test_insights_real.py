"""Real photos, the real backbone, the product's own retrain: label errors and the dashboard.

6 classes x 25 photos of ../shared/datasets/clothing-small are embedded once for the module
(EfficientNet-Lite0, ~15 s on two cores); each test imports them into its own project.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.annotations.services import save_annotation
from labeler.insights import maps
from labeler.items.importing import Importer
from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.models import ModelVersion, Status

from .conftest import real_subset

pytestmark = pytest.mark.slow

N_CLASSES, PER_CLASS = 6, 25


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """[(relative path, class name, bytes)], and sha256 -> real embedding."""
    import hashlib

    from worker.ml.featurizer import Featurizer

    root = real_subset(tmp_path_factory.mktemp("photos"), N_CLASSES, PER_CLASS)
    files = sorted(root.rglob("*.jpg"))
    X, errors = Featurizer("efficientnet-lite0").embed_paths(files)
    assert not errors
    rows = [(p.relative_to(root).as_posix(), p.parent.name, p.read_bytes()) for p in files]
    by_sha = {hashlib.sha256(data).hexdigest(): X[i] for i, (_, _, data) in enumerate(rows)}
    return rows, by_sha


def _import(project, rows, by_sha, labels: list[str | None]):
    """Import the photos (with the given labels, None = unlabeled) and store their embeddings."""
    from labeler.training.stores import store_for

    importer = Importer(project)
    items = [
        importer.add(rel, data, label=label)
        for (rel, _, data), label in zip(rows, labels, strict=True)
    ]
    assert all(items)
    X = np.stack([by_sha[it.sha256] for it in items])
    store_for(project.pk, project.backbone).append(np.array([it.pk for it in items]), X)
    return items


@pytest.mark.django_db
def test_flipped_labels_are_found_and_one_click_away(photos, client, make_user, project_factory):
    from labeler.training.retrain import retrain_now

    rows, by_sha = photos
    names = sorted({cls for _, cls, _ in rows})
    lead = make_user("lead")
    project = project_factory("Noisy", classes=names, lead=lead)
    rng = np.random.default_rng(0)
    n_flip = len(rows) // 10  # 10 % of the labels are wrong
    flipped = set(rng.choice(len(rows), n_flip, replace=False).tolist())
    given = [
        str(rng.choice([c for c in names if c != cls])) if i in flipped else cls
        for i, (_, cls, _) in enumerate(rows)
    ]
    items = _import(project, rows, by_sha, given)
    flipped_ids = {items[i].pk for i in flipped}

    result = retrain_now(project)  # what the Celery retrain task runs
    assert result is not None
    version = ModelVersion.objects.get(project=project)
    issues = version.metrics["label_issues"]
    assert version.metrics["eval_seconds"] < 30
    top = [r["item"] for r in issues[: 2 * n_flip]]
    recall = len(flipped_ids & set(top)) / n_flip
    print(f"\nlabel-error recall in top {2 * n_flip}: {recall:.2f} "
          f"({version.metrics['label_issues_n']} candidates, "
          f"{version.metrics['label_issues_confident']} confident)")
    assert recall >= 0.8
    # The suggestion for a flipped item is mostly its true class.
    true_of = {items[i].pk: rows[i][1] for i in range(len(rows))}
    cls_name = {c.pk: c.name for c in project.classes.all()}
    hits = [r for r in issues if r["item"] in flipped_ids]
    assert np.mean([cls_name[r["suggested"]] == true_of[r["item"]] for r in hits]) >= 0.7

    # The page lists them, each one click from a relabel.
    client.force_login(lead)
    page = client.get(reverse("insights:label_errors", args=[project.pk]))
    assert page.status_code == 200
    listed = [r["item"].pk for r in page.context["result"]["issues"]]
    assert listed[: 2 * n_flip] == top
    first = page.context["result"]["issues"][0]
    assert f'data-item="{first["item"].pk}"' in page.content.decode()
    r = client.post(reverse("insights:relabel", args=[project.pk, first["item"].pk]),
                    json.dumps({"label": first["suggested"].pk}), content_type="application/json")
    assert r.status_code in (200, 201) and r.json()["current"] == first["suggested"].pk
    page = client.get(reverse("insights:label_errors", args=[project.pk]))
    assert first["item"].pk not in [x["item"].pk for x in page.context["result"]["issues"]]
    page = client.get(reverse("insights:label_errors", args=[project.pk]) + "?all=1")
    assert first["item"].pk in [x["item"].pk for x in page.context["result"]["issues"]]


@pytest.mark.django_db
def test_dashboard_with_real_model_versions(photos, client, make_user, project_factory):
    from labeler.training.retrain import retrain_now

    rows, by_sha = photos
    names = sorted({cls for _, cls, _ in rows})
    lead = make_user("lead")
    ann1, ann2 = make_user("ann1"), make_user("ann2")
    project = project_factory("Clothes", classes=names, lead=lead)
    set_member(project, ann1, Role.ANNOTATOR)
    set_member(project, ann2, Role.ANNOTATOR)
    items = _import(project, rows, by_sha, [None] * len(rows))
    truth = {it.pk: rows[i][1] for i, it in enumerate(items)}
    classes = {c.name: c for c in project.classes.all()}
    rng = np.random.default_rng(1)
    order = rng.permutation(len(items))
    # Three rounds of labels, as annotators would give them; 40 % are served as audit items
    # (uniformly at random, flagged on the lease as the queue does), a few items get both
    # annotators (overlap), one of them with a disagreement.
    for round_end in (40, 80, 120):
        for j in order[round_end - 40 : round_end]:
            item = Item.objects.get(pk=items[j].pk)
            user = ann1 if j % 2 else ann2
            if rng.random() < 0.4:
                Item.objects.filter(pk=item.pk).update(leased_by=user, lease_is_audit=True)
                item.refresh_from_db()
            save_annotation(item, classes[truth[item.pk]], user, seconds_spent=3.0,
                            trigger_retrain=False)
        assert retrain_now(project) is not None
    for j in order[:6]:
        item = items[j]
        user = ann2 if j % 2 else ann1
        label = classes[truth[item.pk]] if j != order[0] else classes[names[0]]
        save_annotation(item, label, user, trigger_retrain=False)

    versions = list(ModelVersion.objects.filter(project=project).order_by("number"))
    assert [v.status for v in versions] == [Status.READY] * 3
    assert [v.labels_used for v in versions] == [40, 80, 120]
    last = versions[-1].metrics
    assert last["audit_n"] >= 30 and last["random_curve"] is not None
    assert last["cv_report"]["accuracy"] > 0.6
    assert len(last["cv_report"]["matrix"]) == N_CLASSES

    client.force_login(lead)
    r = client.get(reverse("insights:dashboard", args=[project.pk]))
    assert r.status_code == 200
    data = r.context["chart_data"]
    points = data["curve"]["points"]
    assert [p["n"] for p in points] == [40, 80, 120]
    assert all(p["cv"] is not None for p in points)
    assert points[-1]["audit"] is not None and points[-1]["audit_low"] <= points[-1]["audit"]
    random_curve = data["curve"]["random"]
    assert random_curve["points"][0]["n"] == 10 and random_curve["n_audit"] == last["audit_n"]
    means = [p["mean"] for p in random_curve["points"]]
    assert means[-1] > means[0]  # more random labels, better head
    assert sum(d["labeled"] for d in data["distribution"]) == 120
    assert sum(d["predicted"] for d in data["distribution"]) == len(items)
    assert np.array(data["confusion"]["cv"]).sum() == 120
    people = r.context["people"]
    assert {a["annotator"] for a in people["annotators"]} == {"ann1", "ann2"}
    assert people["agreement"]["items"] == 6 and people["agreement"]["observed"] < 1
    html = r.content.decode()
    for v in versions:
        assert f"v{v.number}" in html
    assert "Random sampling" in html or "uniformly at random" in html
    audit = Annotation.objects.filter(item__project=project, is_audit=True)
    assert audit.count() == last["audit_n"]

    # The embedding map of the same pool (t-SNE: all 150 are landmarks).
    data = maps.compute_map(project)
    assert data["method"] == "tsne" and len(data["ids"]) == len(items)
    payload = client.get(reverse("insights:map_data", args=[project.pk])).json()
    assert payload["status"] == "ready" and payload["n"] == len(items)
    # Same-class photos lie close together on the map: a 5-NN vote in 2-D mostly agrees.
    ids = np.frombuffer(base64.b64decode(payload["ids"]), dtype=np.int32)
    xy = np.stack([np.frombuffer(base64.b64decode(payload[k]), dtype=np.uint16)
                   for k in ("x", "y")], axis=1).astype(float)
    y = np.array([names.index(truth[int(i)]) for i in ids])
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :5]
    vote = np.array([np.bincount(y[row], minlength=N_CLASSES).argmax() for row in nn])
    assert (vote == y).mean() > 0.6
    from labeler.training.stores import map_location

    assert Path(map_location(project.pk, project.backbone)).is_file()
