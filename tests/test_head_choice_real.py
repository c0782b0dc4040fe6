"""Real product photos (../shared/datasets/fashion-multitask), the pretrained backbone
(EfficientNet-Lite0) and the product's own retrain with three label sets: garment type (single
choice), colour tags (multi-label) and season (single choice). The retrain cross-validates the
multi-task head against independent heads on these labels, records the choice, suggests for
every set with the winner and ranks the pool jointly."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from labeler.annotations.services import Answer, save_answers
from labeler.items.importing import Importer
from labeler.items.models import UNRANKED, Item, Prediction
from labeler.projects.label_sets import add_set, primary_set
from labeler.projects.models import SetKind
from labeler.training.models import ModelVersion

from .conftest import REPO
from .lead_fixtures import retrain

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FASHION = REPO.parent / "shared" / "datasets" / "fashion-multitask"
TYPES = ("Tshirts", "Casual Shoes", "Watches", "Handbags")
COLOURS = ("Black", "White", "Blue", "Brown")
SEASONS = ("Summer", "Fall", "Winter")
PER_TYPE = 35


@pytest.fixture(scope="module")
def photos():
    """The chosen rows of labels.csv, their bytes, and sha256 -> real embedding."""
    if not (FASHION / "labels.csv").is_file():
        pytest.skip(f"fashion-multitask not found at {FASHION} (../shared is absent here)")
    from worker.ml.featurizer import Featurizer

    rows = [r for r in csv.DictReader((FASHION / "labels.csv").open())
            if r["split"] == "train" and r["season"] in SEASONS]
    chosen = []
    for kind in TYPES:
        chosen += [r for r in rows if r["type"] == kind][:PER_TYPE]
    paths = [FASHION / "images" / r["file"] for r in chosen]
    X, errors = Featurizer("efficientnet-lite0").embed_paths(paths)
    assert not errors
    data = [p.read_bytes() for p in paths]
    return chosen, data, {hashlib.sha256(d).hexdigest(): X[i] for i, d in enumerate(data)}


def test_real_photos_three_sets_head_choice_suggestions_and_joint_ranking(
        photos, make_user, project_factory):
    from labeler.training.stores import store_for

    rows, data, by_sha = photos
    lead = make_user("lead")
    project = project_factory("Fashion", classes=TYPES, lead=lead, audit_share=0.0)
    types = primary_set(project)
    colours = add_set(project, "colour", SetKind.MULTI, COLOURS)
    seasons = add_set(project, "season", SetKind.SINGLE, SEASONS)
    importer = Importer(project)
    items = [importer.add(r["file"], d) for r, d in zip(rows, data, strict=True)]
    store_for(project.pk, project.backbone).append(
        np.array([i.pk for i in items]), np.stack([by_sha[i.sha256] for i in items]))
    ids = {s.pk: {c.name: c.pk for c in s.classes.all()} for s in (types, colours, seasons)}
    order = np.random.default_rng(0).permutation(len(items))
    labelled = [items[k] for k in order[:100]]
    held_out = [(items[k], rows[k]) for k in order[100:]]
    for item in labelled:
        row = rows[items.index(item)]
        tags = (ids[colours.pk][row["colour"]],) if row["colour"] in COLOURS else ()
        save_answers(item, [Answer(types.pk, ids[types.pk][row["type"]]),
                            Answer(colours.pk, tags=tags),
                            Answer(seasons.pk, ids[seasons.pk][row["season"]])],
                     lead, trigger_retrain=False)
    result = retrain(project)

    choice = result["head_choice"]
    assert choice["n_folds"] == 3 and choice["n_labeled"] == 100
    assert set(choice["per_set"]) == {str(types.pk), str(colours.pk), str(seasons.pk)}
    type_scores = choice["per_set"][str(types.pk)]
    assert type_scores["independent"] > 0.85 and type_scores["multitask"] > 0.85
    ind, mt = choice["scores"]["independent"], choice["scores"]["multitask"]
    assert choice["kind"] == ("multitask" if mt > ind else "independent")
    assert ModelVersion.objects.get(project=project).metrics["head_choice"] == choice

    # The chosen head's suggestions, for every set: garment type right on held-out photos.
    right = [Item.objects.get(pk=item.pk).predicted_class_id == ids[types.pk][row["type"]]
             for item, row in held_out]
    assert np.mean(right) > 0.85, np.mean(right)
    for s in (colours, seasons):
        assert Prediction.objects.filter(label_set=s).values("item").distinct().count() == \
            len(items)
    season_right = [Prediction.objects.filter(item=item, label_set=seasons).get().label_id
                    == ids[seasons.pk][row["season"]] for item, row in held_out]
    assert np.mean(season_right) > 1 / len(SEASONS), np.mean(season_right)

    # Joint ranking: the unlabelled photos, ranked, none of the labelled ones.
    ranked = list(Item.objects.filter(project=project, annotation_count=0)
                  .exclude(query_rank=UNRANKED)
                  .order_by("query_rank").values_list("pk", flat=True))
    assert set(ranked) <= {item.pk for item, _ in held_out} and len(ranked) >= 20
