"""The embedding map: a 2-D projection of the whole pool, stored next to the embeddings.

The projection depends only on the embeddings (not on labels), so it is computed once per
embedding state by a map job (a GPU worker's worker.tasks.project_map) and kept as
``EMBEDDINGS_ROOT/<project>/<backbone>.map.npz`` with a fingerprint of the embedded ids. The page
asks for it; a missing or stale map starts the job (at most one per project at a time, the
Job model's rule) and the page polls. Colours (labels, predictions) are read from the database on every request, so they
are always current. See worker.ml.projection for the method.

What goes to the browser is compact: item ids as Int32, coordinates quantised to Uint16, class
indices as Uint8 and confidences as Uint8, each base64-encoded — about 15 bytes per item, so
100,000 items are ~1.5 MB of JSON and are drawn on one canvas, not as DOM nodes. A larger pool
is sent as every labelled item plus a uniform random sample of the rest (MAX_POINTS in all),
so a million-item project costs the browser, the JSON and this process what 100,000 do.
"""

from __future__ import annotations

import base64
import logging

import numpy as np
from django.db.models import Q

from labeler.annotations.set_labels import labels_per_set
from labeler.items.models import Item, Prediction
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
#: Most points sent to the browser. A canvas draws 10^5 points fluidly, and at ~15 bytes a point
#: that is 1.5 MB of JSON; a larger pool is shown as every labelled item plus a uniform sample.
MAX_POINTS = 100_000
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


def _drawn(n_mapped: int, labelled: Q, prefix: str = "") -> Q:
    """Which items to draw: every item up to MAX_POINTS mapped; beyond, every labelled item
    plus a uniform sample of the rest (``random_key`` below MAX_POINTS / mapped), so the rows
    read, the work here and the JSON stay bounded at any pool size."""
    if n_mapped <= MAX_POINTS:
        return Q()
    return Q(**{f"{prefix}random_key__lt": MAX_POINTS / n_mapped}) | labelled


def _drawn_rows(project: Project, n_mapped: int, label_set=None) -> tuple[np.ndarray, ...]:
    """(item ids, current label, prediction, confidence) of the items to draw, in id order.

    One query; class ids of 0 mean "none". For a set other than the primary one, "labelled"
    is "annotated in any set" (its answers are not a column), and its columns come from
    :func:`_set_columns`."""
    labelled = (Q(current_label__isnull=False) if label_set is None
                else Q(annotation_count__gt=0))
    qs = Item.objects.filter(project=project).filter(_drawn(n_mapped, labelled))
    ids, label, pred, conf = [], [], [], []
    for pk, label_id, pred_id, c in qs.order_by("pk").values_list(
        "pk", "current_label_id", "predicted_class_id", "predicted_confidence"
    ).iterator(chunk_size=10000):
        ids.append(pk)
        label.append(label_id or 0)
        pred.append(pred_id or 0)
        conf.append(0.0 if c is None else c)
    ids_a = np.array(ids, dtype=np.int64)
    if label_set is not None:
        return (ids_a, *_set_columns(project, label_set, ids_a, n_mapped))
    return (ids_a, np.array(label, dtype=np.int64),
            np.array(pred, dtype=np.int64), np.array(conf, dtype=np.float64))


def _set_columns(project: Project, label_set, ids: np.ndarray,
                 n_mapped: int) -> tuple[np.ndarray, ...]:
    """Another label set's (label, prediction, confidence) of the drawn ``ids``: its current
    answers (one per labelled item; a multi-label point shows its first tag) and its stored
    predictions of the drawn items (the most confident tag wins). Two queries at any pool size."""
    label = np.zeros(len(ids), dtype=np.int64)
    pred = np.zeros(len(ids), dtype=np.int64)
    conf = np.zeros(len(ids), dtype=np.float64)
    if not len(ids):
        return label, pred, conf
    answers = labels_per_set(project, only=label_set.pk).get(label_set.pk, {})
    if answers:
        items = np.fromiter(answers, dtype=np.int64, count=len(answers))
        values = np.array([(min(v, default=0) if label_set.multi else v) or 0
                           for v in answers.values()], dtype=np.int64)
        _put(ids, items, values, label)
    rows = np.array(list(Prediction.objects.filter(
        _drawn(n_mapped, Q(item__annotation_count__gt=0), "item__"),
        label_set=label_set, label__isnull=False,
    ).order_by("confidence").values_list("item_id", "label_id", "confidence")
        .iterator(chunk_size=10000)), dtype=np.float64).reshape(-1, 3)
    if len(rows):  # sorted by confidence: the most confident tag of an item is written last
        items = rows[:, 0].astype(np.int64)
        _put(ids, items, rows[:, 1].astype(np.int64), pred)
        _put(ids, items, rows[:, 2], conf)
    return label, pred, conf


def _put(ids: np.ndarray, items: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """out[position of each item in the sorted ``ids``] = value, for the items drawn."""
    at = np.minimum(np.searchsorted(ids, items), len(ids) - 1)
    hit = ids[at] == items
    out[at[hit]] = values[hit]


def _class_index(class_ids: np.ndarray, col: dict[int, int]) -> np.ndarray:
    """Uint8 column of each class id (NONE for 0, unknown or past 254 classes)."""
    lut = np.full(max([0, *col]) + 1, NONE, dtype=np.uint8)
    for cid, j in col.items():
        if j < NONE:
            lut[cid] = j
    inside = class_ids < len(lut)
    return np.where(inside, lut[np.where(inside, class_ids, 0)], NONE).astype(np.uint8)


def map_payload(project: Project, label_set=None) -> dict:
    """JSON for the map page: status, classes, and the encoded arrays when a map exists.

    ``label_set``: a set other than the primary one colours the points by its own labels and
    predictions (no out-of-fold layer: label errors are the primary set's and per set on its
    dashboard)."""
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
    classes = (services.classes_of(project) if label_set is None
               else list(label_set.classes.all()))
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
    map_ids, map_xy = data["ids"], data["xy"]
    col = {c.pk: j for j, c in enumerate(classes)}
    ids, label_ids, pred_ids, confidence = _drawn_rows(project, len(map_ids), label_set)
    pos = np.minimum(np.searchsorted(map_ids, ids), max(len(map_ids) - 1, 0))
    found = map_ids[pos] == ids if len(map_ids) else np.zeros(len(ids), dtype=bool)
    ids, pos = ids[found], pos[found]
    label_ids, pred_ids, confidence = label_ids[found], pred_ids[found], confidence[found]
    n = len(ids)
    xy = map_xy[pos]
    label_idx = _class_index(label_ids, col)
    pred_idx = _class_index(pred_ids, col)
    conf = np.where(pred_idx == NONE, 0, np.round(255 * np.clip(confidence, 0.0, 1.0)))
    conf = conf.astype(np.uint8)
    oof_idx = np.full(n, NONE, dtype=np.uint8)
    disagree = np.zeros(n, dtype=np.uint8)
    labels = {int(i): int(c) for i, c in zip(ids[label_ids > 0].tolist(),
                                             label_ids[label_ids > 0].tolist(), strict=True)}
    found_oof = disagreements(project, labels) if label_set is None else None
    if label_set is not None:
        payload["label_set"] = label_set.name
    if found_oof is not None and n:
        at = np.minimum(np.searchsorted(ids, found_oof["item"]), n - 1)
        hit = ids[at] == found_oof["item"]
        oof_idx[at[hit]] = _class_index(np.asarray(found_oof["predicted"], np.int64)[hit], col)
        disagree[at[hit]] = found_oof["disagree"][hit]
    payload["oof_source"] = found_oof["source"] if found_oof is not None else None
    payload["disagree_n"] = int(disagree.sum())
    # Scaled by the whole map's extent, so a sample sits where the full map would put it.
    lo = map_xy.min(axis=0) if len(map_xy) else np.zeros(2)
    hi = map_xy.max(axis=0) if len(map_xy) else np.ones(2)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    q = np.round((xy - lo) / span * 65535).astype(np.uint16) if n else np.zeros((0, 2), np.uint16)
    payload.update(
        n=n,
        mapped=int(len(map_ids)),
        sampled=bool(n < len(map_ids)),
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
