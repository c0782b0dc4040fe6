"""What the ML lead's pages show, computed from the database, the embedding store and the metrics
that each retrain stores (see worker.ml.evaluation). Views only render what these return.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.db.models import Count, Q

from labeler.annotations.current import current_labels, leads
from labeler.annotations.models import Annotation, Source
from labeler.annotations.set_labels import labels_per_set
from labeler.items.models import Item
from labeler.projects.label_sets import primary_set
from labeler.projects.models import LabelClass, Project
from labeler.training.models import ModelVersion
from labeler.training.stores import store_for
from worker.ml.embedding_store import EmbeddingStore

from .set_exports import SetAnswers

logger = logging.getLogger("labeler.insights")

#: Two labels by the same annotator further apart than this belong to different work sessions.
SESSION_GAP = timedelta(minutes=10)
#: Time credited to the first label of a session (nothing before it to measure from).
FIRST_LABEL_SECONDS = 10.0
#: Computing label errors in a web request is allowed up to this many labels (else: retrain).
MAX_LABELS_ON_DEMAND = 5000


def classes_of(project: Project) -> list[LabelClass]:
    return list(project.classes.all())


def latest_version(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.latest_ready(project)


def load_head(version: ModelVersion):
    """The joblib bundle {"head", "backbone", "classes"} of a version, or None if missing."""
    import joblib

    path = Path(version.head_file) if version.head_file else None
    if path is None or not path.is_file():
        return None
    return joblib.load(path)


def store_of(project: Project, backbone: str | None = None) -> EmbeddingStore:
    return store_for(project.pk, backbone or project.backbone)


# ---------------------------------------------------------------------------- distributions


def pool_counts(project: Project) -> dict:
    """Items, labelled items, audit items and the per-class distribution, in two aggregates.

    Reads the denormalised columns of ``Item`` (current label, audit flag, prediction; see
    labeler.annotations.current). The labelled items (thousands) are grouped by (current label,
    prediction); the whole pool only by prediction, which an index-only scan of the narrow
    ``item_pred_count`` answers without reading the table (a million items in ~0.1 s; the
    retrain's pool refresh vacuums the table so that its pages stay all-visible). The
    unlabelled items predicted as a class are the difference.
    """
    items_of = Item.objects.filter(project=project).order_by()
    # COUNT(*), not COUNT(id): item_pred_count (project, predicted_class) then covers it.
    pool = items_of.values_list("predicted_class_id").annotate(n=Count("*"))
    labelled_rows = (
        items_of.filter(annotation_count__gt=0)
        .values_list("current_label_id", "predicted_class_id")
        .annotate(n=Count("pk"), audit=Count("pk", filter=Q(has_audit_label=True)))
    )
    labelled: Counter = Counter()
    predicted: Counter = Counter()
    predicted_unlabelled: Counter = Counter()
    items = audit = 0
    for predicted_id, n in pool:
        items += n
        if predicted_id is not None:
            predicted[predicted_id] += n
            predicted_unlabelled[predicted_id] += n
    for label_id, predicted_id, n, n_audit in labelled_rows:
        audit += n_audit
        if label_id is not None:
            labelled[label_id] += n
        if predicted_id is not None:
            predicted_unlabelled[predicted_id] -= n
    distribution = [
        {
            "id": c.pk, "name": c.name, "color": c.color,
            "labeled": labelled.get(c.pk, 0),
            "predicted": predicted.get(c.pk, 0),
            "predicted_unlabeled": predicted_unlabelled.get(c.pk, 0),
        }
        for c in classes_of(project)
    ]
    return {"items": items, "labels": sum(labelled.values()), "audit": audit,
            "distribution": distribution}


def evaluation(project: Project, version: ModelVersion | None,
               metrics: dict | None = None) -> dict | None:
    """Confusion matrices and per-class scores of a version, with class names; None if absent.
    ``metrics``: another label set's metrics of the version (labeler.insights.set_views)."""
    if version is None:
        return None
    m = metrics if metrics is not None else (version.metrics or {})
    class_ids = m.get("eval_classes")
    if not class_ids or not m.get("cv_report"):
        return None
    names = {c.pk: c for c in classes_of(project)}

    def rows(report):
        if not report:
            return None
        out = []
        for j, cid in enumerate(class_ids):
            c = names.get(cid)
            out.append({
                "id": cid, "name": c.name if c else f"#{cid} (deleted)",
                "color": c.color if c else "#999",
                "precision": report["precision"][j], "recall": report["recall"][j],
                "f1": report["f1"][j], "support": report["support"][j],
            })
        return out

    return {
        "version": version.number,
        "classes": [names[c].name if c in names else f"#{c}" for c in class_ids],
        "class_ids": class_ids,
        "cv": m["cv_report"],
        "cv_rows": rows(m["cv_report"]),
        "audit": m.get("audit_report"),
        "audit_rows": rows(m.get("audit_report")),
    }


# ---------------------------------------------------------------------------- annotators


def _active_seconds(times: list, spent: list[float]) -> float:
    """Working time: gaps between consecutive labels within a session (plus an allowance for
    each session's first label), or the time the labeling page measured on the images, whichever
    is larger (labels saved in a burst, e.g. from grid mode, have tiny gaps)."""
    if not times:
        return 0.0
    return max(_gap_seconds(times, spent), float(sum(spent)))


def _gap_seconds(times: list, spent: list[float]) -> float:
    times = sorted(times)
    total = 0.0
    typical = float(np.median([s for s in spent if s > 0])) if any(s > 0 for s in spent) else None
    first = typical if typical is not None else FIRST_LABEL_SECONDS
    total += first
    for a, b in zip(times, times[1:], strict=False):
        gap = (b - a).total_seconds()
        total += gap if gap <= SESSION_GAP.total_seconds() else first
    return total


def annotator_stats(project: Project) -> dict:
    """Throughput per annotator and agreement where items were labelled by several people."""
    rows = list(
        Annotation.objects.filter(item__project=project)
        .values_list("annotator_id", "annotator__username", "item_id", "label_id",
                     "created_at", "seconds_spent", "source", "is_audit")
    )
    per: dict = defaultdict(lambda: {"n": 0, "times": [], "spent": [], "audit": 0, "imported": 0})
    by_item: dict[int, list[tuple[int | None, int]]] = defaultdict(list)
    names: dict = {}
    for uid, uname, item_id, label_id, created, spent, source, is_audit in rows:
        names[uid] = uname or "(imported / no user)"
        p = per[uid]
        p["n"] += 1
        p["audit"] += int(bool(is_audit))
        if source == Source.IMPORT:
            p["imported"] += 1
        else:
            p["times"].append(created)
            p["spent"].append(float(spent or 0.0))
        by_item[item_id].append((uid, label_id))

    # Agreement on items with labels from two or more annotators.
    agree_pairs = Counter()
    total_pairs = Counter()
    fleiss_items = []
    marg = Counter()
    for votes in by_item.values():
        people = [(u, lab) for u, lab in votes if u is not None]
        if len({u for u, _ in people}) < 2:
            continue
        counts = Counter(lab for _, lab in people)
        m = len(people)
        fleiss_items.append(sum(c * (c - 1) for c in counts.values()) / (m * (m - 1)))
        marg.update(counts)
        for i in range(m):
            for j in range(i + 1, m):
                (ui, li), (uj, lj) = people[i], people[j]
                same = int(li == lj)
                for u in (ui, uj):
                    total_pairs[u] += 1
                    agree_pairs[u] += same
    overlap = len(fleiss_items)
    agreement = None
    if overlap:
        p_obs = float(np.mean(fleiss_items))
        n_marg = sum(marg.values())
        p_exp = sum((c / n_marg) ** 2 for c in marg.values())
        kappa = (p_obs - p_exp) / (1 - p_exp) if p_exp < 1 else None
        agreement = {
            "items": overlap,
            "observed": round(p_obs, 4),
            "fleiss_kappa": None if kappa is None else round(kappa, 4),
        }

    table = []
    for uid, p in per.items():
        active = _active_seconds(p["times"], p["spent"])
        manual = len(p["times"])
        table.append({
            "annotator": names[uid],
            "labels": p["n"],
            "manual": manual,
            "imported": p["imported"],
            "audit": p["audit"],
            "active_hours": round(active / 3600, 2) if manual else None,
            "labels_per_hour": round(manual / (active / 3600), 1) if manual and active else None,
            "median_seconds": round(float(np.median([s for s in p["spent"] if s > 0])), 1)
            if any(s > 0 for s in p["spent"]) else None,
            "first": min(p["times"]) if p["times"] else None,
            "last": max(p["times"]) if p["times"] else None,
            "overlap_pairs": total_pairs.get(uid, 0),
            "agreement": round(agree_pairs[uid] / total_pairs[uid], 4)
            if total_pairs.get(uid) else None,
        })
    table.sort(key=lambda r: -r["labels"])
    return {"annotators": table, "agreement": agreement}


# ---------------------------------------------------------------------------- label errors


def labelled_count(project: Project) -> int:
    """How many items have a current label (an index range count)."""
    return Item.objects.filter(project=project, current_label__isnull=False).count()


def labelled_items(project: Project) -> dict[int, int]:
    """Item id -> current label id from the denormalised column (rows in proportion to the
    labels, not to the pool; no annotation is read)."""
    qs = Item.objects.filter(project=project, current_label__isnull=False).order_by()
    return dict(qs.values_list("pk", "current_label_id").iterator(chunk_size=5000))


def _labelled_matrix(project: Project, labels: dict[int, int], backbone: str | None = None):
    """(item ids, X float32, y) of the labelled items that have an embedding."""
    ids, matrix = store_of(project, backbone).load()
    if not len(ids) or not labels:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    lab = np.array(sorted(labels), dtype=np.int64)
    pos = np.searchsorted(ids, lab)
    pos = np.minimum(pos, len(ids) - 1)
    found = ids[pos] == lab
    lab, pos = lab[found], pos[found]
    X = np.asarray(matrix[pos], dtype=np.float32)
    y = np.array([labels[int(i)] for i in lab], dtype=np.int64)
    return lab, X, y


def reviewed_since(project: Project, item_ids: list[int], when) -> set[int]:
    """Items of `item_ids` a lead labelled after `when`: a relabel or a "keep"."""
    if when is None or not item_ids:
        return set()
    # By project and time (few rows since the last retrain), not by a long list of ids.
    recent = Annotation.objects.filter(item__project=project, updated_at__gt=when,
                                       annotator__in=leads(project))
    return set(recent.values_list("item_id", flat=True)) & {int(i) for i in item_ids}


def compute_evaluation(project: Project, *, with_oof: bool = False) -> dict | None:
    """Run worker.ml.evaluation on the current labels now (no model version needed)."""
    from worker.ml.evaluation import evaluate_labels

    labels, audit = current_labels(project)
    ids, X, y = _labelled_matrix(project, labels)
    if len(ids) < 2 or len(np.unique(y)) < 2:
        return None
    version = latest_version(project)
    C = (version.metrics or {}).get("C") if version else None
    is_audit = np.array([int(i) in audit for i in ids.tolist()])
    return evaluate_labels(X, y, item_ids=ids, audit=is_audit, C=C, random_curve=False,
                           with_oof=with_oof)


def label_issues(project: Project, *, include_reviewed: bool = False, label_set=None) -> dict:
    """Likely label errors of the latest version (or computed now when it stored none).

    Each issue says what the label was when it was flagged and what it is now; items a lead
    labelled after the evaluation (a relabel or a "keep") count as reviewed and are hidden
    unless ``include_reviewed``. ``label_set``: another single-choice set than the primary one
    (its head's issues, stored with the version; never computed on demand).
    """
    version = latest_version(project)
    metrics = (version.metrics or {}) if version else {}
    if label_set is not None:
        metrics = (metrics.get("sets") or {}).get(str(label_set.pk)) or {}
    source = "version"
    result = metrics if "label_issues" in metrics else None
    evaluated_at = version.finished_at if version else None
    if result is None and label_set is not None:
        return {"version": version, "issues": [], "flagged": 0, "source": "missing",
                "evaluated_at": None}
    if result is None:
        if labelled_count(project) > MAX_LABELS_ON_DEMAND:
            return {"version": version, "issues": [], "flagged": 0, "source": "missing",
                    "evaluated_at": None}
        result = compute_evaluation(project) or {"label_issues": [], "label_issues_n": 0}
        source = "computed"
        evaluated_at = None
    raw = result.get("label_issues", [])
    classes = {c.pk: c for c in (classes_of(project) if label_set is None
                                 else label_set.classes.all())}
    item_ids = [r["item"] for r in raw]
    # Only the flagged items, with their denormalised current label (no scan of all labels);
    # another set's current answers of those items only.
    items = Item.objects.filter(project=project).in_bulk(item_ids)
    answers = None if label_set is None else labels_per_set(
        project, only=label_set.pk, items=item_ids).get(label_set.pk, {})
    reviewed = reviewed_since(project, item_ids, evaluated_at)
    issues = []
    for rank, r in enumerate(raw, start=1):
        item = items.get(r["item"])
        if item is None:
            continue
        now = item.current_label_id if answers is None else answers.get(item.pk)
        done = item.pk in reviewed or now != r["given"]
        if done and not include_reviewed:
            continue
        issues.append({
            "rank": rank,
            "item": item,
            "given": classes.get(r["given"]),
            "suggested": classes.get(r["suggested"]),
            "current": classes.get(now),
            "confident": r.get("confident", True),
            "self_confidence": r["self_confidence"],
            "suggested_confidence": r["suggested_confidence"],
            "reviewed": done,
        })
    return {
        "version": version,
        "issues": issues,
        "flagged": result.get("label_issues_n", len(raw)),
        "confident": result.get("label_issues_confident"),
        "source": source,
        "evaluated_at": evaluated_at,
    }


# ---------------------------------------------------------------------------- one item


def item_details(project: Project, item: Item) -> dict:
    """Annotations, current label and the latest head's probabilities for one item."""
    annotations = list(
        Annotation.objects.filter(item=item).select_related("annotator", "label", "label_set")
        .prefetch_related("tags")
        .order_by("created_at")
    )
    classes = classes_of(project)
    by_id = {c.pk: c for c in classes}
    proba = None
    version = latest_version(project)
    if version is not None:
        bundle = load_head(version)
        if bundle is not None:
            try:
                x = store_of(project, bundle.get("backbone")).take([item.pk])
            except KeyError:
                x = None
            if x is not None:
                p = bundle["head"].predict_proba(np.asarray(x, dtype=np.float32))[0]
                proba = sorted(
                    ({"class": by_id.get(int(cid)), "p": round(float(pv), 4)}
                     for cid, pv in zip(bundle["classes"], p, strict=True) if int(cid) in by_id),
                    key=lambda r: -r["p"],
                )
    sets = []
    if project.label_sets.count() > 1:  # every set's current answer (the item inspector)
        answers = SetAnswers(project, items=[item.pk])
        sets = [{"name": e["set"], "kind": e["kind"], "removed": e["removed"],
                 "answer": ", ".join(e["tags"]) if e["kind"] == "multi" and e["tags"] is not None
                 else (e.get("label") or ("no tags" if e["kind"] == "multi" and e["tags"] == []
                                           else None))}
                for e in answers.json_sets(item.pk)]
        primary = {c.pk for c in primary_set(project).classes.all()} if primary_set(project) \
            else set()
        classes = [c for c in classes if c.pk in primary]  # relabel: the primary set
    return {
        "annotations": annotations,
        "sets": sets,
        "current": by_id.get(item.current_label_id),
        "is_audit": item.has_audit_label,
        "proba": proba,
        "version": version,
        "classes": classes,
    }
