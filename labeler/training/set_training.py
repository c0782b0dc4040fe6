"""The retrain's part for the label sets beyond the primary one, on the web side: what the GPU
worker needs to learn each set (plain data: classes, labelled items and their answers, audit
flags; worker.compute then calls worker.set_learning.learn_set once per set), and the ingest of
its predictions as labeler.items.models.Prediction rows (the labeling page's suggestions and
grid mode). Metrics go to ``ModelVersion.metrics["sets"]``; heads into the version's head file
(the model download carries every head)."""

from __future__ import annotations

import logging

from django.db import transaction

from labeler.annotations.set_labels import labels_per_set
from labeler.items.models import Prediction
from labeler.projects.label_sets import active_sets, primary_set
from labeler.projects.models import Project
from worker.set_learning import NO_CLASS

logger = logging.getLogger(__name__)
BATCH = 5000


def plan_sets(project: Project, audit: set[int]) -> list[dict]:
    """Every non-primary active set with at least one label, as plain data for the worker."""
    primary = primary_set(project)
    others = [s for s in active_sets(project) if primary is None or s.pk != primary.pk]
    if not others:
        return []
    answers = labels_per_set(project, include_removed=False)
    planned = []
    for label_set in others:
        given = answers.get(label_set.pk, {})
        if not given:
            continue
        items = sorted(given)
        planned.append({
            "id": label_set.pk, "name": label_set.name, "kind": label_set.kind,
            "classes": list(label_set.classes.values_list("pk", flat=True)),
            "items": items,
            "targets": [sorted(given[i]) if label_set.multi else given[i] for i in items],
            "audit": [i for i in items if i in audit],
        })
    return planned


def store_set_predictions(results: dict, sets: list[dict]) -> None:
    """Replace each learnt set's predictions with the worker's (short transactions, so that
    annotators never wait on them)."""
    for entry in sets:
        key = f"set_{entry['id']}"
        if f"{key}_item" not in results:
            continue  # the set failed on the worker (its metrics say why)
        items, labels, conf = (results[f"{key}_item"], results[f"{key}_label"],
                               results[f"{key}_conf"])
        with transaction.atomic():
            Prediction.objects.filter(label_set_id=entry["id"]).delete()
        for start in range(0, len(items), BATCH):
            Prediction.objects.bulk_create([
                Prediction(item_id=int(i), label_set_id=entry["id"],
                           label_id=None if int(c) == NO_CLASS else int(c), confidence=float(p))
                for i, c, p in zip(items[start:start + BATCH], labels[start:start + BATCH],
                                   conf[start:start + BATCH], strict=True)
            ])
