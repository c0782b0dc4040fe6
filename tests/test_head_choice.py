"""Several label sets in the product's retrain (worker.multi_set): the head is chosen between a
multi-task head and independent heads by cross-validation on the project's own labels and
recorded on the version (and shown on the dashboard); with too few labels the comparison is
skipped and the page says why; ``auto`` ranks the pool by the joint strategy; a project with one
set ranks exactly as it always did. Synthetic embeddings here (the wiring is the point); the
real photos and backbone: tests/test_head_choice_real.py."""

from __future__ import annotations

import io
import zipfile

import joblib
import numpy as np
import pytest
from django.urls import reverse

from labeler.annotations.services import Answer, save_answers
from labeler.items.models import Item
from labeler.training.actions import Kind, do_start_job
from labeler.training.models import ModelVersion
from labeler.training.retrain import plan
from labeler.training.stores import store_for
from worker import compute, multi_set, storage
from worker.ml.head import LogisticHead

from .label_set_fixtures import two_sets_fixture  # noqa: F401 (the two_sets fixture)
from .lead_fixtures import retrain
from .test_label_sets_learning import _world

pytestmark = pytest.mark.django_db


def _answer(items, truth, types, colours, user) -> None:
    for item in items:
        t, tags = truth[item.pk]
        save_answers(item, [Answer(types.pk, t), Answer(colours.pk, tags=tuple(sorted(tags)))],
                     user, trigger_retrain=False)


def _message(project) -> dict:
    """The retrain's plain-data message (what the web side sends the GPU worker)."""
    job = do_start_job(project, Kind.RETRAIN)
    job.project = project
    return plan(job)


def _primary_only_ranking(message: dict) -> np.ndarray:
    """The single-set path on the same labels: the primary head, the single-set strategy."""
    ids, matrix = store_for(message["project"], message["backbone"]).load()
    items = np.asarray(message["items"], dtype=np.int64)
    rows = np.searchsorted(ids, items)
    X_lab = np.asarray(matrix[rows], dtype=np.float32)
    head = LogisticHead().fit(X_lab, np.asarray(message["labels"], dtype=np.int64))
    return compute.rank_pool(message["strategy"], head, ids, matrix, items, X_lab,
                             n_classes=message["n_classes"], query_pool=message["query_pool"],
                             retrain_every=message["retrain_every"])


def test_single_set_project_ranks_exactly_as_before(db, make_user, project_factory,
                                                    monkeypatch):
    """One label set: no head comparison, no joint ranking; the ranking is the single-set one
    (the product's ranking draws an unseeded generator: both runs get the same seed here)."""
    import worker.ml.strategies as strategies

    from .lead_fixtures import CLASSES, embed, label, make_items

    monkeypatch.setattr(strategies, "rng_from", lambda _: np.random.default_rng(7))
    lead = make_user("lead")
    project = project_factory("One set", classes=CLASSES, lead=lead)
    items = make_items(project, 120)
    truth = embed(project, items, project.backbone)
    label(project, items[:40], truth, lead, audit_every=5)
    message = _message(project)
    assert "primary" not in message and message["sets"] == []
    report = compute.train_and_rank(message)
    ranked = storage.load_arrays(message["result"])["ranked"]
    assert "head_choice" not in report["metrics"]
    np.testing.assert_array_equal(ranked, _primary_only_ranking(message))


def test_two_sets_choose_the_head_by_cv_and_rank_jointly(client, two_sets):
    project, types, colours, _, annotator = two_sets
    items, truth = _world(project, types, colours)
    _answer(items[:90], truth, types, colours, annotator)
    message = _message(project)
    assert message["primary"]["id"] == types.pk and message["sets"][0]["id"] == colours.pk
    report = compute.train_and_rank(message)
    choice = report["metrics"]["head_choice"]
    # Cross-validated on this project's 90 labelled items, both heads scored on both sets.
    assert choice["n_folds"] == 3 and choice["n_labeled"] == 90
    assert set(choice["per_set"]) == {str(types.pk), str(colours.pk)}
    assert choice["set_names"] == {str(types.pk): types.name, str(colours.pk): "colour"}
    ind, mt = choice["scores"]["independent"], choice["scores"]["multitask"]
    assert 0.6 < ind <= 1 and 0.6 < mt <= 1  # type accuracy and colour mAP, far above chance
    assert choice["kind"] == ("multitask" if mt > ind else "independent")

    # auto with two sets: the joint ranking of the chosen head, not the primary set's alone.
    ids, matrix = store_for(project.pk, project.backbone).load()
    labels = multi_set.plan_labels(message, ids)
    model, again, new = multi_set.choose_and_fit(labels, matrix)
    assert new
    assert again.kind == choice["kind"]
    ranked = storage.load_arrays(message["result"])["ranked"]
    expected = multi_set.joint_rank(model, labels, ids, matrix,
                                    query_pool=message["query_pool"],
                                    retrain_every=message["retrain_every"])
    np.testing.assert_array_equal(ranked, expected)
    assert not np.isin(ranked, labels.item_ids).any()
    single = _primary_only_ranking(message)
    assert list(ranked[:20]) != list(single[:20])


def test_the_version_records_the_choice_the_dashboard_shows_it_and_the_download_has_it(
        client, two_sets):
    project, types, colours, _, annotator = two_sets
    items, truth = _world(project, types, colours, seed=3)
    _answer(items[:90], truth, types, colours, annotator)
    retrain(project)
    version = ModelVersion.objects.get(project=project, status="ready")
    choice = version.metrics["head_choice"]
    client.force_login(project.memberships.get(role="lead").user)
    url = reverse("insights:dashboard", args=[project.pk])
    for page in (client.get(url), client.get(f"{url}?set={colours.pk}")):
        html = page.content.decode()
        assert 'id="head-choice-table"' in html and "3-fold cross-validation" in html
        assert ("Heads: multi-task" if choice["kind"] == "multitask"
                else "Heads: independent") in html
    r = client.get(reverse("insights:export", args=[project.pk, "model"]))
    bundle = joblib.load(io.BytesIO(zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content)))
                                    .read("head.joblib")))
    assert bundle["head_choice"]["kind"] == choice["kind"]
    assert set(bundle["sets"]) == {str(colours.pk)}
    ids, matrix = store_for(project.pk, project.backbone).load()
    if choice["kind"] == "multitask":  # the winner is in the download, and it runs
        proba = bundle["multitask"].predict_proba(np.asarray(matrix[:4], dtype=np.float32))
        assert proba[str(colours.pk)].shape == (4, 3)
        # ... and gave the suggestions: the primary column holds its prediction.
        item = Item.objects.get(pk=int(ids[0]))
        p = proba[str(types.pk)][0]
        classes = bundle["multitask"].set_model(str(types.pk)).classes_
        type_ids = list(types.classes.values_list("pk", flat=True))
        assert item.predicted_class_id == type_ids[int(classes[p.argmax()])]
    else:
        assert bundle["multitask"] is None


def test_the_choice_stands_until_the_labels_grow_by_half(client, two_sets):
    """Cross-validating both heads costs many retrains: the next retrains keep the choice until
    the labelled items have grown by REDECIDE_GROWTH, then it is made again on all of them."""
    project, types, colours, _, annotator = two_sets
    items, truth = _world(project, types, colours, n=150, seed=5)
    _answer(items[:60], truth, types, colours, annotator)
    first = retrain(project)["head_choice"]
    assert first["decided_at"] == 1 and first["n_labeled"] == 60
    _answer(items[60:80], truth, types, colours, annotator)  # 80 < 1.5 x 60: it stands
    second = retrain(project)["head_choice"]
    assert second["decided_at"] == 1 and second["n_labeled"] == 60
    assert second["labels_now"] == 80 and second["scores"] == first["scores"]
    client.force_login(project.memberships.get(role="lead").user)
    html = client.get(reverse("insights:dashboard", args=[project.pk])).content.decode()
    assert "decided at v1 on 60 labelled items" in html
    _answer(items[80:95], truth, types, colours, annotator)  # 95 >= 90: decided again
    third = retrain(project)["head_choice"]
    assert third["decided_at"] == 3 and third["n_labeled"] == 95 == third["labels_now"]


def test_too_few_labels_skip_the_comparison_and_say_so(client, two_sets):
    project, types, colours, _, annotator = two_sets
    items, truth = _world(project, types, colours, n=40)
    _answer(items[:8], truth, types, colours, annotator)
    result = retrain(project)
    choice = result["head_choice"]
    assert choice["kind"] == "independent" and choice["n_folds"] == 0
    assert "too few labels" in choice["reason"]
    client.force_login(project.memberships.get(role="lead").user)
    html = client.get(reverse("insights:dashboard", args=[project.pk])).content.decode()
    assert 'id="head-choice-skipped"' in html and "too few labels to cross-validate" in html
