"""COCO exports for image classification: the labels (ground truth) and the model's predictions
(a results file for ``COCO.loadRes``), following https://cocodataset.org/#format-data.

COCO has no classification task, so each labelled image gets one annotation covering the whole
image, as classification datasets converted to COCO do: ``bbox`` ``[0, 0, w, h]``, ``area``
``w * h``, ``segmentation`` the polygon of the image rectangle (so ``annToMask`` and
``COCOeval(iouType="segm")`` work), ``iscrowd`` 0. Extra per-annotation facts (audit flag, number
of annotations) sit in ``attributes``, where CVAT's COCO exports keep theirs.

``file_name`` is ``<class folder>/<file>`` for labelled images (bare ``<file>`` with several label
sets, whose zip has a folder per set; categories then carry their set as supercategory): the path of the image inside the
"Images by class" zip, so the two exports unpacked side by side resolve. Unlabelled images (only
with ``unlabeled=True``) are not in that zip: their ``file_name`` is the bare ``<file>`` of the
CSV export, and every image also carries ``original_name`` (the name it was imported under).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np

from labeler.items.models import Item
from labeler.projects.models import Project

from . import services
from .export_base import CHUNK, Naming, iter_rows, ready_head
from .set_exports import SetAnswers

#: The one license entry every image points to: labeler does not know the images' terms.
LICENSE = {"id": 1, "name": "Unknown: see the data's source", "url": ""}


def _whole_image(w: int, h: int) -> dict:
    return {
        "bbox": [0, 0, w, h], "area": w * h, "iscrowd": 0,
        "segmentation": [[0, 0, w, 0, w, h, 0, h]],
    }


def export_coco(project: Project, *, unlabeled: bool = True) -> Iterator[bytes]:
    """Images, categories and one whole-image annotation per labelled image (several label
    sets: one per class or tag of every set, the set named in ``attributes``)."""
    sets = SetAnswers(project)
    set_of = dict(project.classes.values_list("pk", "label_set_id"))
    set_names = {s.pk: s.name for s in sets.sets}
    now = datetime.now(UTC)
    head = {
        "info": {
            "description": f"labeler export of project {project.name}",
            "version": "1.0", "year": now.year, "contributor": "labeler",
            "date_created": now.isoformat(),
        },
        "licenses": [LICENSE],
        # Several label sets: every set's classes, the set as supercategory.
        "categories": [
            {"id": c.pk, "name": c.name,
             "supercategory": set_names[c.label_set_id] if sets.several else "none"}
            for c in project.classes.order_by("label_set__order", "label_set_id", "order", "id")
        ],
    }
    text = json.dumps(head, ensure_ascii=False)
    yield (text[:-1] + ', "images": [').encode()
    naming = Naming(project)
    out: list[str] = []
    first = True
    for r in iter_rows(project, naming):
        it = r.item
        if not unlabeled and not (r.label_id or sets.several and it.annotation_count):
            continue
        file_name = f"{naming.folders[r.label_id]}/{r.file}" \
            if r.label_id and not sets.several else r.file
        out.append(("" if first else ",") + json.dumps({
            "id": it.pk, "file_name": file_name, "width": it.width, "height": it.height,
            "license": LICENSE["id"], "date_captured": it.created_at.isoformat(),
            "original_name": it.original_name,
        }, ensure_ascii=False))
        first = False
        if len(out) >= 500:
            yield "".join(out).encode()
            out = []
    out.append('], "annotations": [')
    # A second pass over the labelled items only, rather than a list of them kept from the first.
    labelled = Item.objects.filter(project=project).order_by("pk").filter(
        annotation_count__gt=0) if sets.several else Item.objects.filter(
        project=project, current_label__isnull=False).order_by("pk")
    n = 0
    for item_id, label_id, w, h, is_audit, count in labelled.values_list(
        "pk", "current_label_id", "width", "height", "has_audit_label", "annotation_count"
    ).iterator(chunk_size=CHUNK):
        for class_id in [label_id] * bool(label_id) + sets.other_classes(item_id):
            n += 1
            out.append(("," if n > 1 else "") + json.dumps({
                "id": n, "image_id": item_id, "category_id": class_id, **_whole_image(w, h),
                "attributes": {"is_audit": is_audit, "n_annotations": count, **(
                    {"label_set": set_names[set_of[class_id]]} if sets.several else {})},
            }))
        if len(out) >= 500:
            yield "".join(out).encode()
            out = []
    out.append("]}")
    yield "".join(out).encode()


def export_coco_predictions(
    project: Project, version_number: int | None = None, *, unlabeled: bool = True
) -> Iterator[bytes]:
    """A COCO results list: for every embedded image of the matching ``coco`` export, one result
    per class with the head's probability as ``score`` and the whole-image box."""
    _, bundle = ready_head(project, version_number)
    return _results(project, bundle, unlabeled)


def _results(project: Project, bundle: dict, unlabeled: bool) -> Iterator[bytes]:
    head = bundle["head"]
    head_classes = [int(c) for c in bundle["classes"]]
    store_ids, matrix = services.store_of(project, bundle.get("backbone")).load()
    qs = Item.objects.filter(project=project).order_by("pk")
    if not unlabeled:
        qs = qs.filter(current_label__isnull=False)
    qs = qs.only("pk", "width", "height")
    yield b"["
    first = True

    def flush(items: list[Item]) -> str:
        nonlocal first
        ids = np.array([i.pk for i in items], dtype=np.int64)
        if not len(store_ids):
            return ""
        pos = np.minimum(np.searchsorted(store_ids, ids), len(store_ids) - 1)
        found = store_ids[pos] == ids
        if not found.any():
            return ""
        proba = head.predict_proba(np.asarray(matrix[pos[found]], dtype=np.float32))
        parts = []
        for item, p in zip([i for i, ok in zip(items, found, strict=True) if ok], proba,
                           strict=True):
            box = [0, 0, item.width, item.height]
            for cid, score in zip(head_classes, p.tolist(), strict=True):
                parts.append(("" if first else ",") + json.dumps(
                    {"image_id": item.pk, "category_id": cid, "bbox": box,
                     "score": round(score, 5)}
                ))
                first = False
        return "".join(parts)

    batch: list[Item] = []
    for item in qs.iterator(chunk_size=CHUNK):
        batch.append(item)
        if len(batch) >= 4096:
            yield flush(batch).encode()
            batch = []
    if batch:
        yield flush(batch).encode()
    yield b"]"
