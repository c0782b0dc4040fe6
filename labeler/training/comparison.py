"""Every model version scored on the same audit items, so that a lead can compare versions.

Each version's own audit accuracy was measured on the audit items labelled by its time: v3 on
12 items, v4 on 13 others, so a change between them mixes the model's change with the luck of
the items. Here every version is scored again, at each retrain, on one set of items.

What is compared. For version v: its *evaluation head* — the product's head fitted on v's
labels except the audit ones (stored at v's retrain, see worker.artifacts) — predicts
the project's **current audit items**, scored against their **current labels**. The audit items
are a uniform random sample of the pool, and none of them is in any compared head's training
set, so each number is an unbiased estimate of that version's accuracy on the pool, and all
versions are judged on the same items (a paired comparison: a difference between two versions
is a difference of models, not of test items). Left out of the set, so that it stays the same
for every version: audit items some compared head was trained on (an item labelled normally
that a second annotator later got as an audit item) and items lacking an embedding under a
compared backbone (imported after the project moved off that backbone).

Different backbones: a head needs embeddings of its own backbone. A version whose backbone's
embeddings are gone (its store was deleted), or that stored no evaluation head (trained before
versions were compared), is listed as not comparable, with the reason.

The interval is the 95 % Wilson interval (worker.ml.metrics.wilson_interval).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from worker import storage
from worker.artifacts import load_eval_head
from worker.ml.metrics import wilson_interval

from .models import ModelVersion, Status
from .stores import store_for, store_location


@dataclass
class Candidate:
    """A version to score: its number, backbone, labels used and head file."""

    number: int
    backbone: str
    labels_used: int
    head_file: str


def _store_ids(project_id: int, backbone: str) -> tuple[object, np.ndarray] | None:
    """The backbone's store and its ids, or None when the folder is gone or empty."""
    if not storage.exists(store_location(project_id, backbone)):
        return None
    store = store_for(project_id, backbone)
    ids = store.ids()
    return (store, ids) if len(ids) else None


def compare_versions(
    project,
    labels: dict[int, int],
    audit_items: Iterable[int],
    *,
    extra: Iterable[Candidate] = (),
) -> dict:
    """Score every ready version (and ``extra``, the one being made) on the same audit items.

    Returns ``{"n", "left_out_trained", "left_out_missing", "versions": [...]}``; each version
    entry holds ``version, backbone, labels_used, comparable`` and either ``correct, n,
    accuracy, ci`` or ``reason``. JSON-ready (stored in the new version's metrics).
    """
    candidates = [
        Candidate(v.number, v.backbone, v.labels_used, v.head_file)
        for v in ModelVersion.objects.filter(project=project, status=Status.READY)
        .order_by("number")
    ] + list(extra)
    entries: list[dict] = []
    heads: dict[int, dict] = {}
    for c in candidates:
        entry = {"version": c.number, "backbone": c.backbone, "labels_used": c.labels_used,
                 "comparable": False}
        bundle = load_eval_head(c.head_file)
        if bundle is None:
            entry["reason"] = "no evaluation head stored (trained before versions were compared)"
        else:
            heads[c.number] = bundle
        entries.append(entry)

    items = {int(i) for i in audit_items if int(i) in labels}
    trained = set()
    for bundle in heads.values():
        trained.update(int(i) for i in bundle["train_ids"].tolist())
    left_out_trained = len(items & trained)
    items -= trained

    stores: dict[str, tuple[object, np.ndarray] | None] = {}
    for bundle in heads.values():
        backbone = bundle["backbone"]
        if backbone not in stores:
            found = _store_ids(project.pk, backbone)
            if found is not None and not np.isin(list(items), found[1]).any() and items:
                found = None  # holds none of the audit items: as good as gone
            stores[backbone] = found
    before = len(items)
    for found in stores.values():
        if found is not None:
            items &= set(found[1].tolist())
    common = np.array(sorted(items), dtype=np.int64)
    truth = np.array([labels[int(i)] for i in common], dtype=np.int64)

    rows: dict[str, np.ndarray] = {}
    for entry in entries:
        bundle = heads.get(entry["version"])
        if bundle is None:
            continue
        backbone = bundle["backbone"]
        if stores.get(backbone) is None:
            entry["reason"] = f"the embeddings of backbone {backbone} are gone"
            continue
        if not len(common):
            entry["reason"] = "no audit items to score on yet"
            continue
        if backbone not in rows:
            rows[backbone] = np.asarray(stores[backbone][0].take(common), dtype=np.float32)
        correct = int((bundle["head"].predict(rows[backbone]) == truth).sum())
        low, high = wilson_interval(correct, len(common))
        entry.update(comparable=True, correct=correct, n=int(len(common)),
                     accuracy=round(correct / len(common), 4),
                     ci=[round(float(low), 4), round(float(high), 4)])
    return {
        "n": int(len(common)),
        "left_out_trained": int(left_out_trained),
        "left_out_missing": int(before - len(common)),
        "versions": entries,
    }
