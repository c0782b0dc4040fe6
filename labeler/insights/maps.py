"""The embedding map: a 2-D projection of the whole pool, stored next to the embeddings.

The projection depends only on the embeddings (not on labels), so it is computed once per
embedding state by a map job (a GPU worker's worker.tasks.project_map) and kept as
``EMBEDDINGS_ROOT/<project>/<backbone>.map.npz`` with a fingerprint of the embedded ids. The page
asks for it; a missing or stale map starts the job (at most one per project at a time, the
Job model's rule) and the page polls. Colours (labels, predictions) are read from the database on every request, so they
are always current. See worker.ml.projection for the method.

What goes to the browser is compact: item ids as Int32, coordinates quantised to Uint16, class
indices as Uint8 and confidences as Uint8, each base64-encoded — about 15 bytes per item, so
100,000 items are ~1.5 MB of JSON and are drawn on one canvas, not as DOM nodes.
"""

from __future__ import annotations

import base64
import logging

import numpy as np

from labeler.items.models import Item
from labeler.projects.models import Project
from labeler.training.actions import active_job, is_stale
from labeler.training.models import Job
from labeler.training.services import request_map
from labeler.training.stores import map_location, store_location
from worker import compute
from worker.artifacts import load_oof

from . import services

logger = logging.getLogger("labeler.insights")

NONE = 255  # "no class" in the Uint8 class arrays
fingerprint = compute.fingerprint


def read_map(project: Project) -> dict | None:
    return compute.read_map(map_location(project.pk, project.backbone))


def compute_map(project: Project, *, method: str = "tsne", force: bool = False) -> dict | None:
    """Compute and store the projection now, in this process (skipped when current)."""
    return compute.compute_map(store_location(project.pk, project.backbone),
                               map_location(project.pk, project.backbone), method=method,
                               force=force)


def is_pending(project: Project) -> bool:
    """A map job is queued or running (and alive)."""
    job = active_job(project, Job.Kind.MAP)
    return job is not None and job.status != Job.State.DELAYED and not is_stale(job)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def disagreements(project: Project, labels: dict[int, int]) -> dict | None:
    """The out-of-fold disagreements the label-errors page lists, for every labelled item.

    Same source as that page: the latest version's out-of-fold predictions (stored at its
    retrain, labeler.training.artifacts), or, when it stored none, computed now on the current
    labels (up to services.MAX_LABELS_ON_DEMAND). An item disagrees when it is a label-error
    candidate (confident-learning flag, or the out-of-fold prediction is another class) and is
    not reviewed since: its label is still the one judged and no lead labelled it after.
    Returns ``{"item", "predicted", "disagree", "source"}`` or None when unavailable.
    """
    version = services.latest_version(project)
    oof = load_oof(version.head_file) if version is not None else None
    when = version.finished_at if version is not None else None
    source = f"model v{version.number}" if version is not None else ""
    if oof is None:
        if not labels or len(labels) > services.MAX_LABELS_ON_DEMAND:
            return None
        result = services.compute_evaluation(project, with_oof=True)
        if result is None:
            return None
        oof, when, source = result["oof"], None, "computed now"
    items = oof["item"].astype(np.int64)
    still = np.array([labels.get(int(i)) == int(g) for i, g in zip(items, oof["given"],
                                                                      strict=True)], dtype=bool)
    disagree = oof["candidate"].astype(bool) & still
    reviewed = services.reviewed_since(project, items[disagree].tolist(), when)
    if reviewed:
        disagree &= ~np.isin(items, list(reviewed))
    return {"item": items, "predicted": oof["predicted"], "disagree": disagree, "source": source}


def map_payload(project: Project, label_set=None) -> dict:
    """JSON for the map page: status, classes, and the encoded arrays when a map exists.

    ``label_set``: a set other than the primary one colours the points by its own labels and
    predictions (labeler.insights.set_views; a multi-label point shows its first tag)."""
    store_ids = services.store_of(project).ids()
    current_fp = fingerprint(store_ids)
    data = read_map(project)
    stale = data is None or data["fingerprint"] != current_fp or data["method"] == "pca"
    queued = False
    if stale and len(store_ids):
        queued = request_map(project) or is_pending(project)
        if data is None and not queued:
            # No worker reachable: a linear map now is better than none.
            data = compute_map(project, method="pca")
    classes = services.classes_of(project) if label_set is None else list(
        label_set.classes.all())
    payload: dict = {
        "status": "ready" if not stale else ("computing" if queued else "stale"),
        "classes": [{"id": c.pk, "name": c.name, "color": c.color} for c in classes],
        "embedded": int(len(store_ids)),
        "items": Item.objects.filter(project=project).count(),
    }
    if data is None:
        payload["status"] = "computing" if queued else "empty"
        payload["n"] = 0
        return payload
    ids = data["ids"]
    n = len(ids)
    col = {c.pk: j for j, c in enumerate(classes)}
    if label_set is not None:
        return _set_arrays(project, label_set, payload, data, col)
    labels, _ = services.current_labels(project)
    label_idx = np.full(n, NONE, dtype=np.uint8)
    pred_idx = np.full(n, NONE, dtype=np.uint8)
    conf = np.zeros(n, dtype=np.uint8)
    pos_of = {int(i): p for p, i in enumerate(ids.tolist())}
    for item_id, label_id in labels.items():
        p = pos_of.get(item_id)
        if p is not None and label_id in col and col[label_id] < NONE:
            label_idx[p] = col[label_id]
    for item_id, pred, c in Item.objects.filter(
        project=project, predicted_class__isnull=False
    ).values_list("pk", "predicted_class_id", "predicted_confidence").iterator(chunk_size=5000):
        p = pos_of.get(item_id)
        if p is not None and pred in col and col[pred] < NONE:
            pred_idx[p] = col[pred]
            conf[p] = int(round(255 * min(max(float(c or 0.0), 0.0), 1.0)))
    oof_idx = np.full(n, NONE, dtype=np.uint8)
    disagree = np.zeros(n, dtype=np.uint8)
    found = disagreements(project, labels)
    if found is not None:
        for item_id, pred, flag in zip(found["item"].tolist(), found["predicted"].tolist(),
                                       found["disagree"].tolist(), strict=True):
            p = pos_of.get(item_id)
            if p is not None:
                oof_idx[p] = col[pred] if pred in col and col[pred] < NONE else NONE
                disagree[p] = flag
    payload["oof_source"] = found["source"] if found is not None else None
    payload["disagree_n"] = int(disagree.sum())
    return _finish(payload, data, label_idx, pred_idx, conf, oof_idx, disagree)


def _finish(payload, data, label_idx, pred_idx, conf, oof_idx, disagree) -> dict:
    """The positions, quantised to 16 bits, and every array base64-encoded."""
    ids, xy = data["ids"], data["xy"]
    n = len(ids)
    lo = xy.min(axis=0) if n else np.zeros(2)
    hi = xy.max(axis=0) if n else np.ones(2)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    q = np.round((xy - lo) / span * 65535).astype(np.uint16) if n else np.zeros((0, 2), np.uint16)
    payload.update(
        n=n,
        method=data["method"],
        seconds=round(data["seconds"], 1),
        ids=_b64(ids.astype(np.int32)),
        x=_b64(q[:, 0]),
        y=_b64(q[:, 1]),
        label=_b64(label_idx),
        pred=_b64(pred_idx),
        conf=_b64(conf),
        oof=_b64(oof_idx),
        disagree=_b64(disagree),
    )
    return payload


def _set_arrays(project: Project, label_set, payload: dict, data: dict, col: dict) -> dict:
    """Another label set's labels and predictions on the same map (no out-of-fold layer)."""
    from labeler.annotations.set_labels import labels_per_set
    from labeler.items.models import Prediction

    ids = data["ids"]
    n = len(ids)
    pos_of = {int(i): p for p, i in enumerate(ids.tolist())}
    label_idx = np.full(n, NONE, dtype=np.uint8)
    pred_idx = np.full(n, NONE, dtype=np.uint8)
    conf = np.zeros(n, dtype=np.uint8)
    for item_id, value in labels_per_set(project).get(label_set.pk, {}).items():
        first = min(value, default=None) if label_set.multi else value
        p = pos_of.get(item_id)
        if p is not None and first in col and col[first] < NONE:
            label_idx[p] = col[first]
    for item_id, pred, c in Prediction.objects.filter(
        label_set=label_set, label__isnull=False
    ).order_by("confidence").values_list("item_id", "label_id", "confidence").iterator(5000):
        p = pos_of.get(item_id)  # the most confident tag is written last
        if p is not None and pred in col and col[pred] < NONE:
            pred_idx[p] = col[pred]
            conf[p] = int(round(255 * min(max(float(c), 0.0), 1.0)))
    payload.update(oof_source=None, disagree_n=0, label_set=label_set.name)
    return _finish(payload, data, label_idx, pred_idx, conf, np.full(n, NONE, dtype=np.uint8),
                   np.zeros(n, dtype=np.uint8))
