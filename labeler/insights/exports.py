"""Exports of a project's labels, predictions and model, as streams of bytes.

Every format is a generator of byte chunks, used both by the download views (one
StreamingHttpResponse) and by ``manage.py export_labels`` (written to a file), so the two can
never disagree and nothing is ever held whole in memory: database rows are read in chunks, zips
are written to a non-seekable stream (zipfile then uses data descriptors), images are copied file
by file.

Formats:
    csv          one row per item: file, label, annotations count, audit flag, prediction
    json         project, classes, latest model, and per item every annotation
    coco         COCO for classification (see labeler.insights.coco): images, categories, one
                 whole-image box + polygon per labelled image, audit flag in ``attributes``
    coco-predictions  COCO results list (image_id, category_id, bbox, score) for COCO.loadRes
    folders      a zip with one folder per class holding the labelled images, plus labels.csv
    predictions  CSV with the latest head's probability for every class, for every item
    model        a zip: head.joblib (the current head), classes.json and README.md (inference)

Several label sets (labeler.insights.set_exports): CSV gets a ``label:<set>`` column per set
beyond the primary one (tags joined by ``|``), JSON a nested ``sets`` list per item, folders a
``<set>/<class>/`` tree, COCO every set's classes (the set as supercategory); ``predictions`` is
the primary head's, and ``model`` carries every set's head.

"The label" of an item is the current-label rule of labeler.annotations.current (the one the
retrain trains on): a lead's label wins, otherwise the majority over annotators, the latest
label winning ties. It is read from the item's denormalised current-label column as the rows
stream: no export loads every label first.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from labeler.annotations.current import RULE
from labeler.annotations.models import Annotation
from labeler.csv_safety import csv_line
from labeler.items.sources import ImageUnavailable, local_path, read_image
from labeler.projects.label_sets import primary_set
from labeler.projects.models import Project
from labeler.training.models import ModelVersion

from . import coco, services
from .export_base import (
    CHUNK,
    ExportError,
    Naming,
    Row,
    _safe,
    iter_rows,
    ready_head,
    ready_version,
)
from .model_readme import model_readme
from .set_exports import SetAnswers, tags_of_annotations

logger = logging.getLogger("labeler.export")

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "labels.csv"),
    "json": ("application/json", "labels.json"),
    "coco": ("application/json", "coco.json"),
    "folders": ("application/zip", "images-by-class.zip"),
    "predictions": ("text/csv; charset=utf-8", "predictions.csv"),
    "model": ("application/zip", "model.zip"),
    "coco-predictions": ("application/json", "coco-predictions.json"),
}
#: Formats that can leave out the unlabelled images (``unlabeled=False``).
UNLABELED_OPTION = ("coco", "coco-predictions")
CSV_COLUMNS = [
    "item_id", "file", "original_name", "sha256", "width", "height", "label", "label_id",
    "n_annotations", "is_audit", "predicted", "predicted_confidence",
]


def _csv_line(values: list) -> bytes:
    """One CSV row; cells a spreadsheet would run as formulas are neutralised."""
    return csv_line(values).encode("utf-8")


# ---------------------------------------------------------------------------- CSV / JSON / COCO


def export_csv(project: Project) -> Iterator[bytes]:
    naming = Naming(project)
    sets = SetAnswers(project)  # "label" is the primary set; a column per other set follows
    yield _csv_line(CSV_COLUMNS + sets.csv_header())
    lines: list[bytes] = []
    for r in iter_rows(project, naming):
        it = r.item
        lines.append(_csv_line([
            it.pk, r.file, it.original_name, it.sha256, it.width, it.height,
            naming.names.get(r.label_id, "") if r.label_id else "", r.label_id or "",
            it.annotation_count, int(r.is_audit),
            naming.names.get(it.predicted_class_id, "") if it.predicted_class_id else "",
            "" if it.predicted_confidence is None else f"{it.predicted_confidence:.4f}",
            *sets.csv_cells(it.pk),
        ]))
        if len(lines) >= 500:
            yield b"".join(lines)
            lines = []
    if lines:
        yield b"".join(lines)


def _annotations_by_item(project: Project) -> Iterator[tuple[int, list[dict]]]:
    """(item id, its annotations) in item id order, read in chunks."""
    qs = (
        Annotation.objects.filter(item__project=project)
        .order_by("item_id", "created_at")
        .values_list("item_id", "annotator__username", "label_id", "source", "is_audit",
                     "seconds_spent", "created_at", "label_set_id", "pk")
    )
    tags = tags_of_annotations(project)
    current, batch = None, []
    for item_id, user, label_id, source, is_audit, seconds, created, set_id, pk in qs.iterator(
        CHUNK
    ):
        if item_id != current:
            if current is not None:
                yield current, batch
            current, batch = item_id, []
        batch.append({
            "annotator": user, "label_id": label_id, "source": source, "is_audit": is_audit,
            "seconds_spent": round(float(seconds or 0.0), 3), "created_at": created.isoformat(),
            "label_set_id": set_id, **({"tag_ids": tags[pk]} if pk in tags else {}),
        })
    if current is not None:
        yield current, batch


def _version_info(version: ModelVersion | None) -> dict | None:
    if version is None:
        return None
    m = version.metrics or {}
    return {
        "version": version.number, "backbone": version.backbone, "labels_used": version.labels_used,
        "cv_accuracy": m.get("cv_accuracy"), "audit_accuracy": m.get("audit_accuracy"),
        "audit_ci": m.get("audit_ci"), "created_at": version.created_at.isoformat(),
    }


def export_json(project: Project) -> Iterator[bytes]:
    naming = Naming(project)
    classes = [
        {"id": c.pk, "name": c.name, "hotkey": c.hotkey, "order": c.order, "color": c.color,
         "folder": naming.folders[c.pk]}
        for c in project.classes.all()
    ]
    head = {
        "format": "labeler-labels",
        "format_version": 1,
        "exported_at": datetime.now(UTC).isoformat(),
        "project": {"id": project.pk, "name": project.name, "backbone": project.backbone},
        "label_rule": RULE,
        "classes": classes,
        "model": _version_info(services.latest_version(project)),
    }
    sets = SetAnswers(project)
    if sets.several:
        head["label_sets"] = sets.set_info()
    text = json.dumps(head, ensure_ascii=False)
    yield (text[:-1] + ', "items": [').encode()
    anns = _annotations_by_item(project)
    pending = next(anns, None)
    first = True
    out: list[str] = []
    for r in iter_rows(project, naming):
        it = r.item
        these: list[dict] = []
        while pending is not None and pending[0] < it.pk:
            pending = next(anns, None)
        if pending is not None and pending[0] == it.pk:
            these = pending[1]
            pending = next(anns, None)
        for a in these:
            a["label"] = naming.names.get(a["label_id"])
            if "tag_ids" in a:
                a["tags"] = [naming.names.get(t) for t in a["tag_ids"]]
        obj = {
            "id": it.pk, "file": r.file, "original_name": it.original_name, "sha256": it.sha256,
            "width": it.width, "height": it.height,
            "label": naming.names.get(r.label_id) if r.label_id else None,
            "label_id": r.label_id, "is_audit": r.is_audit, "annotations": these,
            "prediction": None if it.predicted_class_id is None else {
                "label": naming.names.get(it.predicted_class_id),
                "label_id": it.predicted_class_id,
                "confidence": None if it.predicted_confidence is None
                else round(it.predicted_confidence, 4),
            },
        }
        if sets.several:
            obj["sets"] = sets.json_sets(it.pk)
        out.append(("" if first else ",") + json.dumps(obj, ensure_ascii=False))
        first = False
        if len(out) >= 500:
            yield "".join(out).encode()
            out = []
    out.append("]}")
    yield "".join(out).encode()


# ---------------------------------------------------------------------------- zips


class _Sink:
    """A write-only, non-seekable file object whose bytes are drained by the generator."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data) -> int:
        b = bytes(data)
        self.parts.append(b)
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def seek(self, *args):
        raise OSError("not seekable")

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        return data


Entry = tuple[str, Path | bytes | Iterable[bytes]]


def zip_stream(entries: Iterable[Entry]) -> Iterator[bytes]:
    """A zip of (name, file path | bytes | byte chunks) entries, yielded as it is written."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as zf:
        for name, content in entries:
            if isinstance(content, Path):
                # Images are compressed already: store them.
                zf.write(content, name, compress_type=zipfile.ZIP_STORED)
            else:
                info = zipfile.ZipInfo(name, date_time=datetime.now().timetuple()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                chunks = [content] if isinstance(content, bytes) else content
                with zf.open(info, "w", force_zip64=True) as dest:
                    for chunk in chunks:
                        dest.write(chunk)
                        if sink.pos and len(sink.parts) > 64:
                            yield sink.drain()
            yield sink.drain()
    yield sink.drain()


def export_folders(project: Project) -> Iterator[bytes]:
    naming = Naming(project)
    sets = SetAnswers(project)

    def image(r) -> Path | bytes | None:
        """The item's image: a local file, or the bytes from the bucket or its source URL."""
        path = local_path(r.item.image_name, r.item.source)
        if path is not None:
            return path if path.is_file() else None
        try:  # in the bucket, or referenced (--no-copy): read one at a time
            return read_image(r.item.image_name, r.item.source)
        except ImageUnavailable as exc:
            logger.warning("export of project %s: %s left out: %s", project.pk, r.file, exc)
            return None

    def entries() -> Iterator[Entry]:
        for r in iter_rows(project, naming):
            if sets.several:  # <set>/<class>/<file>, every tag's folder in a multi-label set
                folders = sets.folder_entries(r.item.pk, naming.folders)
            elif r.label_id:
                folders = [naming.folders[r.label_id]]
            else:
                folders = []
            data = image(r) if folders else None
            if data is not None:
                for folder in folders:
                    yield f"{folder}/{r.file}", data
        yield "labels.csv", export_csv(project)

    yield from zip_stream(entries())


# ---------------------------------------------------------------------------- predictions, model


def export_predictions(project: Project, version_number: int | None = None) -> Iterator[bytes]:
    """Every item with the head's probability for each class (blank where not embedded)."""
    version, bundle = ready_head(project, version_number)
    return _predictions(project, version, bundle)


def _predictions(project: Project, version: ModelVersion, bundle: dict) -> Iterator[bytes]:
    head = bundle["head"]
    head_classes = [int(c) for c in bundle["classes"]]
    primary = primary_set(project)  # the main head's set (other sets: bundle["sets"])
    classes = list(project.classes.filter(label_set=primary))
    col_of = {cid: j for j, cid in enumerate(head_classes)}
    names = {c.pk: c.name for c in classes}
    store_ids, matrix = services.store_of(project, bundle.get("backbone")).load()
    naming = Naming(project)
    yield _csv_line(
        ["item_id", "file", "label", "predicted", "confidence", "model_version"]
        + [f"p_{c.name}" for c in classes]
    )
    batch: list[Row] = []

    def flush(rows: list[Row]) -> bytes:
        ids = np.array([r.item.pk for r in rows], dtype=np.int64)
        pos = np.minimum(np.searchsorted(store_ids, ids), max(len(store_ids) - 1, 0))
        found = store_ids[pos] == ids if len(store_ids) else np.zeros(len(ids), bool)
        proba = None
        if found.any():
            proba = head.predict_proba(np.asarray(matrix[pos[found]], dtype=np.float32))
        lines, k = [], 0
        for r, ok in zip(rows, found.tolist(), strict=True):
            label = names.get(r.label_id, "")
            if not ok:
                lines.append(_csv_line([r.item.pk, r.file, label, "", "", version.number]
                                       + [""] * len(classes)))
                continue
            p = proba[k]
            k += 1
            best = int(p.argmax())
            lines.append(_csv_line(
                [r.item.pk, r.file, label, names.get(head_classes[best], ""), f"{p[best]:.4f}",
                 version.number]
                + [f"{p[col_of[c.pk]]:.4f}" if c.pk in col_of else "0" for c in classes]
            ))
        return b"".join(lines)

    for r in iter_rows(project, naming):
        batch.append(r)
        if len(batch) >= 4096:
            yield flush(batch)
            batch = []
    if batch:
        yield flush(batch)


def export_model(project: Project, version_number: int | None = None) -> Iterator[bytes]:
    version = ready_version(project, version_number)
    path = Path(version.head_file) if version.head_file else None
    if path is None or not path.is_file():
        raise ExportError(f"The head file of v{version.number} is missing.")
    names = {str(c.pk): c.name for c in project.classes.all()}
    entries: list[Entry] = [
        ("head.joblib", path),
        ("classes.json", json.dumps(names, ensure_ascii=False, indent=2).encode()),
        ("README.md", model_readme(project, version).encode()),
    ]
    sets = SetAnswers(project)
    if sets.several:  # which head answers which set (the bundle's "sets" hold the others)
        entries.append(("label_sets.json",
                        json.dumps(sets.set_info(), ensure_ascii=False, indent=2).encode()))
    return zip_stream(entries)


def export(project: Project, fmt: str, *, version: int | None = None,
           unlabeled: bool = True) -> Iterator[bytes]:
    """The byte stream of one format. Raises ExportError before the first byte if impossible.

    ``unlabeled=False`` leaves the unlabelled images out of the formats in UNLABELED_OPTION."""
    if fmt == "csv":
        return export_csv(project)
    if fmt == "json":
        return export_json(project)
    if fmt == "coco":
        return coco.export_coco(project, unlabeled=unlabeled)
    if fmt == "coco-predictions":
        return coco.export_coco_predictions(project, version, unlabeled=unlabeled)
    if fmt == "folders":
        return export_folders(project)
    if fmt == "predictions":
        return export_predictions(project, version)
    if fmt == "model":
        return export_model(project, version)
    raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")


def filename_for(project: Project, fmt: str) -> str:
    return f"{_safe(project.name, 'project').replace(' ', '_')}-{FORMATS[fmt][1]}"
