"""The retrain's writes: the new ranking replaces the old one, every item gets its suggestion, and
the suggestions are written in many short transactions (annotators keep writing meanwhile)."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeler.items.models import UNRANKED, Item
from labeler.training.ingest import PREDICTION_BATCH, store_predictions


@pytest.mark.django_db(transaction=True)
def test_ranking_swap_and_suggestions_in_short_transactions(project_factory):
    project = project_factory("Predictions", classes=["a", "b"])
    n = 2 * PREDICTION_BATCH + 7
    Item.objects.bulk_create(
        Item(project=project, image=f"x/{i}.jpg", original_name=f"{i}.jpg", sha256=f"{i:064x}",
             width=8, height=8, query_rank=i if i < 3 else UNRANKED)
        for i in range(n)
    )
    ids = np.array(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    a, b = project.classes.order_by("pk").values_list("pk", flat=True)
    predicted = np.where(np.arange(n) % 2 == 0, a, b)
    confidence = np.linspace(0.5, 0.99, n)
    ranked = [int(ids[-1]), int(ids[10])]
    with CaptureQueriesContext(connection) as queries:
        store_predictions(project, ids, predicted, confidence, ranked)

    ranks = dict(Item.objects.filter(query_rank__lt=UNRANKED).values_list("pk", "query_rank"))
    assert ranks == {int(ids[-1]): 0, int(ids[10]): 1}  # the old top 3 were unranked
    stored = dict(Item.objects.values_list("pk", "predicted_class_id"))
    assert all(stored[int(i)] == int(p) for i, p in zip(ids, predicted, strict=True))
    conf = Item.objects.get(pk=int(ids[-1])).predicted_confidence
    assert conf == pytest.approx(0.99, abs=1e-4)
    if connection.vendor == "sqlite":
        begins = sum(q["sql"].startswith("BEGIN") for q in queries.captured_queries)
        assert begins >= 1 + n // PREDICTION_BATCH  # the swap, then one per batch
