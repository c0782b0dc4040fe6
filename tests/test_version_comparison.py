"""Every version scored on the same audit items (issue 17.2) and one CV accuracy per version
(issue 17.3), through the product's retrain on synthetic embeddings under two backbones."""

from __future__ import annotations

import re

import joblib
import numpy as np
import pytest
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.training.models import ModelVersion
from worker import artifacts

from .lead_fixtures import BACKBONES, drop_store, retrain, three_versions

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(make_user, project_factory):
    lead = make_user("lead")
    project = project_factory("Compare", classes=["cat", "dog", "bird"], lead=lead)
    world = three_versions(project, lead)
    return {"project": project, "lead": lead, **world}


def _audit_now(project) -> set[int]:
    return set(Annotation.objects.filter(item__project=project, is_audit=True)
               .values_list("item_id", flat=True))


def test_every_version_is_scored_on_the_current_audit_items(versions):
    project = versions["project"]
    v3 = ModelVersion.objects.get(project=project, number=3)
    comparison = v3.metrics["comparison"]
    audit = _audit_now(project)
    assert len(audit) == 30 and comparison["n"] == 30 and comparison["left_out_trained"] == 0
    entries = {e["version"]: e for e in comparison["versions"]}
    assert set(entries) == {1, 2, 3}
    assert [entries[v]["backbone"] for v in (1, 2, 3)] == [BACKBONES[0]] * 2 + [BACKBONES[1]]
    from labeler.annotations.current import current_labels
    from labeler.training.stores import store_for

    labels, _ = current_labels(project)
    ids = np.array(sorted(audit))
    truth = np.array([labels[i] for i in ids])
    for number in (1, 2, 3):
        entry = entries[number]
        assert entry["comparable"] and entry["n"] == 30
        version = ModelVersion.objects.get(project=project, number=number)
        bundle = artifacts.load_eval_head(version.head_file)
        # Unbiased: no scored item was in that version's training set ...
        assert not set(bundle["train_ids"].tolist()) & audit
        # ... although the downloadable head of v2 was trained on v1's and v2's audit items.
        # The number is the eval head's, on the version's own backbone, against current labels.
        X = store_for(project.pk, entry["backbone"]).take(ids).astype(np.float32)
        correct = int((bundle["head"].predict(X) == truth).sum())
        assert entry["correct"] == correct
        low, high = entry["ci"]
        assert low <= entry["accuracy"] <= high and high - low > 0.1
    # The latest version's own audit number (its audit items are all of them) is the same.
    assert entries[3]["accuracy"] == pytest.approx(v3.metrics["audit_accuracy"], abs=1e-4)
    # Older versions' at-the-time numbers were on fewer items: 10 and 20.
    assert [ModelVersion.objects.get(project=project, number=v).metrics["audit_n"]
            for v in (1, 2)] == [10, 20]


def test_a_version_whose_backbone_store_is_gone_is_not_comparable(versions):
    project, lead = versions["project"], versions["lead"]
    drop_store(project, BACKBONES[0])
    # v2's eval file removed too: a version from before comparisons were stored.
    v2 = ModelVersion.objects.get(project=project, number=2)
    artifacts.eval_head_path(v2.head_file).unlink()
    retrain(project)
    v4 = ModelVersion.objects.get(project=project, number=4)
    entries = {e["version"]: e for e in v4.metrics["comparison"]["versions"]}
    assert not entries[1]["comparable"] and BACKBONES[0] in entries[1]["reason"]
    assert not entries[2]["comparable"] and "no evaluation head" in entries[2]["reason"]
    assert entries[3]["comparable"] and entries[4]["comparable"]
    assert entries[3]["n"] == entries[4]["n"] == 30
    # The dashboard says so, with the backbone of every version.
    from django.test import Client

    client = Client()
    client.force_login(lead)
    html = client.get(reverse("insights:dashboard", args=[project.pk])).content.decode()
    table = html[html.index('id="versions"'):]
    assert "not comparable" in table and BACKBONES[0] in table and BACKBONES[1] in table


def test_audit_items_a_head_trained_on_are_left_out_for_all(versions):
    """An item labelled normally for v1 and later given as an audit item to a second annotator
    must not be scored: v1's evaluation head has seen it."""
    project = versions["project"]
    v1 = ModelVersion.objects.get(project=project, number=1)
    trained = artifacts.load_eval_head(v1.head_file)["train_ids"]
    Annotation.objects.filter(item_id=int(trained[0])).update(is_audit=True)
    retrain(project)
    comparison = ModelVersion.objects.get(project=project, number=4).metrics["comparison"]
    assert comparison["left_out_trained"] == 1 and comparison["n"] == 30
    assert {e["n"] for e in comparison["versions"] if e["comparable"]} == {30}


def test_one_cross_validated_accuracy_per_version(versions, client):
    """The header, the versions table, the learning curve and the confusion matrix's footer
    show the accuracy of the same out-of-fold predictions."""
    project = versions["project"]
    for version in ModelVersion.objects.filter(project=project):
        m = version.metrics
        assert m["cv_accuracy"] == m["cv_report"]["accuracy"]
        oof = artifacts.load_oof(version.head_file)
        labels = dict(Annotation.objects.filter(item__project=project)
                      .values_list("item_id", "label_id"))
        given = np.array([labels[int(i)] for i in oof["item"]])
        assert round(float((oof["predicted"] == given).mean()), 4) == m["cv_accuracy"]
        assert int(oof["candidate"].sum()) == m["label_issues_n"]
        # The downloadable head does not carry the out-of-fold matrix.
        assert joblib.load(version.head_file)["head"].cv_proba_ is None
    client.force_login(versions["lead"])
    html = client.get(reverse("insights:dashboard", args=[project.pk])).content.decode()
    v3 = ModelVersion.objects.get(project=project, number=3).metrics
    shown = f"{100 * v3['cv_accuracy']:.1f} %"
    header = re.search(r'id="kpi-cv">(.*?)</dd>', html, re.S).group(1)
    footer = re.search(r'id="cm-accuracy">(.*?)<', html, re.S).group(1)
    assert shown in header and shown in footer


def test_head_cv_accuracy_is_the_accuracy_of_its_out_of_fold_predictions():
    from worker.ml.head import LogisticHead

    rng = np.random.default_rng(3)
    y = np.arange(90) % 3
    X = rng.normal(size=(3, 16))[y] + 1.5 * rng.normal(size=(90, 16))
    head = LogisticHead().fit(X, y)
    assert head.cv_proba_.shape == (90, 3)
    assert np.allclose(head.cv_proba_.sum(axis=1), 1, atol=1e-5)
    assert head.cv_accuracy_ == pytest.approx((head.cv_proba_.argmax(axis=1) == y).mean())
