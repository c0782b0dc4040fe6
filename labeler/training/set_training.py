"""The retrain's part for the label sets beyond the primary one: one call of
worker.set_learning.learn_set per set, its predictions stored as labeler.items.models.Prediction
rows (the labeling page's suggestions and grid mode), its metrics and head returned to be kept
on the model version and in its head file (the model download carries every head)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from django.db import transaction

from labeler.annotations.set_labels import labels_per_set
from labeler.items.models import Prediction
from labeler.projects.label_sets import active_sets, primary_set
from labeler.projects.models import Project
from worker.set_learning import learn_set

logger = logging.getLogger(__name__)
BATCH = 5000


def train_other_sets(
    project: Project,
    ids: np.ndarray,
    matrix,
    row_of: dict[int, int],
    audit_items: set[int],
    predict_all: Callable,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Fit and store every non-primary active set. Returns (metrics by set id, heads by set id).

    A set without an embedded label yet is left out (its suggestions stay as they were)."""
    primary = primary_set(project)
    others = [s for s in active_sets(project) if primary is None or s.pk != primary.pk]
    if not others:
        return {}, {}
    answers = labels_per_set(project, include_removed=False)
    metrics, heads = {}, {}
    for label_set in others:
        given = {i: v for i, v in answers.get(label_set.pk, {}).items() if i in row_of}
        if not given:
            continue
        item_ids = np.array(sorted(given), dtype=np.int64)
        X = np.asarray(matrix[np.array([row_of[int(i)] for i in item_ids])], dtype=np.float32)
        classes = list(label_set.classes.values_list("pk", flat=True))
        try:
            result = learn_set(
                label_set.kind, classes, X, [given[int(i)] for i in item_ids], item_ids,
                np.array([int(i) in audit_items for i in item_ids]), ids, predict_all,
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            # One set's failure (too few labels of a kind) leaves the others and the primary
            # head standing; the dashboard shows why.
            logger.warning("retrain project=%s set %s failed: %s", project.pk, label_set, exc)
            metrics[str(label_set.pk)] = {"name": label_set.name, "kind": label_set.kind,
                                          "error": f"{type(exc).__name__}: {exc}"}
            continue
        _store(label_set.pk, result.rows)
        metrics[str(label_set.pk)] = {"name": label_set.name, **result.metrics}
        heads[str(label_set.pk)] = {"name": label_set.name, **result.head}
        logger.info("retrain project=%s set %s (%s): %d labels", project.pk, label_set.name,
                    label_set.kind, len(item_ids))
    return metrics, heads


def _store(set_id: int, rows: list[tuple[int, int | None, float]]) -> None:
    """Replace the set's predictions: short transactions, so annotators never wait on them."""
    with transaction.atomic():
        Prediction.objects.filter(label_set_id=set_id).delete()
    for start in range(0, len(rows), BATCH):
        Prediction.objects.bulk_create([
            Prediction(item_id=i, label_set_id=set_id, label_id=c, confidence=p)
            for i, c, p in rows[start:start + BATCH]
        ])
