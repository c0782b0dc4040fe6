"""Celery tasks. They only orchestrate: load rows, call the ML core (worker.ml), store results.

Both tasks are idempotent and resumable: embedding skips items already in the store; a retrain
reads the current labels and replaces the previous ranking atomically.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import joblib
import numpy as np
from celery import shared_task
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from threadpoolctl import threadpool_limits

from worker.ml.embedding_store import EmbeddingStore

logger = logging.getLogger("worker.tasks")

# An embedding chain that has not reported progress for this long is presumed dead.
EMBED_STALE = timedelta(seconds=settings.LABELER_EMBED_STALE_SECONDS)


def store_for(project_id: int, backbone: str) -> EmbeddingStore:
    """Embeddings of one project under one backbone: a folder, so backbones never mix."""
    return EmbeddingStore(Path(settings.EMBEDDINGS_ROOT) / str(project_id) / backbone)


@lru_cache(maxsize=2)
def get_featurizer(backbone: str, weights_path: str = ""):
    """One featurizer per worker process and backbone: loading weights costs seconds."""
    from worker.ml.featurizer import Featurizer

    batch_size = settings.LABELER_EMBED_BATCH_SIZE or None
    return Featurizer(backbone, batch_size=batch_size, weights_path=weights_path or None)


def _embed_missing(
    project, backbone: str, weights: str, *, label: str, limit: int
) -> tuple[int, int, bool]:
    """Embed up to `limit` items that `backbone`'s store lacks. Returns (done, errors, complete)."""
    from labeler.items.models import Item
    from labeler.projects.models import Project

    store = store_for(project.pk, backbone)
    rows = list(
        Item.objects.filter(project=project, embed_error="").order_by("pk").values_list("pk", "image")
    )
    all_ids = np.array([pk for pk, _ in rows], dtype=np.int64)
    missing = set(store.missing(all_ids).tolist()) if len(all_ids) else set()
    todo = [(pk, name) for pk, name in rows if pk in missing]
    total, already = len(rows), len(rows) - len(todo)
    todo = todo[: max(limit, 0)]
    Project.objects.filter(pk=project.pk).update(
        embed_status="running", embed_total=total, embed_done=already, embed_rate=0.0,
        embed_updated_at=timezone.now(), embed_message=label,
    )
    logger.info(
        "embed project=%s backbone=%s: %d to embed, %d already stored",
        project.pk, backbone, len(todo), already,
    )
    done = errors = 0
    if todo:
        featurizer = get_featurizer(backbone, weights)
        ids = np.array([pk for pk, _ in todo], dtype=np.int64)
        paths = [str(Path(settings.MEDIA_ROOT) / name) for _, name in todo]
        started = time.monotonic()
        for batch in featurizer.iter_batches(paths):
            if len(batch.indices):
                store.append(ids[batch.indices], batch.embeddings)
            for index, message in batch.errors.items():
                Item.objects.filter(pk=int(ids[index])).update(embed_error=message[:1000])
                errors += 1
            done += len(batch.indices) + len(batch.errors)
            rate = done / max(time.monotonic() - started, 1e-6)
            Project.objects.filter(pk=project.pk).update(
                embed_done=already + done, embed_rate=rate, embed_updated_at=timezone.now()
            )
            logger.info(
                "embed project=%s backbone=%s: %d/%d (%.1f img/s)",
                project.pk, backbone, already + done, total, rate,
            )
        store.compact()
    pending = Item.objects.filter(project=project, embed_error="").values_list("pk", flat=True)
    complete = len(store.missing(np.fromiter(pending, dtype=np.int64))) == 0
    return done, errors, complete


def _store_complete(project) -> bool:
    from labeler.items.models import Item

    pending = Item.objects.filter(project=project, embed_error="").values_list("pk", flat=True)
    store = store_for(project.pk, project.backbone)
    return len(store.missing(np.fromiter(pending, dtype=np.int64))) == 0


@shared_task(
    bind=True, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=5, max_retries=5
)
def embed_project(self, project_id: int, token: str | None = None) -> dict:
    """Embed every item that has no embedding yet (resumable, batched).

    With a backbone switch pending, the new backbone's store is filled while the current one
    keeps serving; when it is complete the project swaps to it and retrains on the new features.
    """
    from labeler.projects.models import Project
    from labeler.training.services import request_embedding

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        logger.warning("embed: project %s no longer exists", project_id)
        return {"embedded": 0, "errors": 0}
    chunk = settings.LABELER_EMBED_CHUNK
    done = errors = 0
    swapped = False
    complete = more = False
    # One chain of chunks per project: a chain owns the project through its token; another
    # chain (a duplicate request, a late redelivery) steps aside unless the owner went silent.
    token = token or uuid.uuid4().hex
    now = timezone.now()
    claimed = Project.objects.filter(
        Q(embed_token="") | Q(embed_token=token) | Q(embed_updated_at__lt=now - EMBED_STALE)
        | Q(embed_updated_at__isnull=True),
        pk=project.pk,
    ).update(embed_token=token, embed_updated_at=now, embed_requested_at=now)
    if not claimed:
        logger.info("embed project=%s: another embedding run is active, skipping", project.pk)
        return {"embedded": 0, "errors": 0, "skipped": True}
    try:
        d, e, complete = _embed_missing(
            project, project.backbone, project.backbone_weights, label="", limit=chunk
        )
        done, errors = done + d, errors + e
        pending = project.pending_backbone
        if pending and complete and done + errors < chunk:
            d, e, pending_complete = _embed_missing(
                project, pending, project.pending_weights, label=f"switching to {pending}",
                limit=chunk - done - errors,
            )
            done, errors = done + d, errors + e
            if pending_complete:
                swapped = bool(
                    Project.objects.filter(pk=project.pk, pending_backbone=pending).update(
                        backbone=pending, backbone_weights=project.pending_weights,
                        pending_backbone="", pending_weights="",
                    )
                )
                logger.info("project=%s now uses backbone %s", project.pk, pending)
        project.refresh_from_db()
        more = (not complete or bool(project.pending_backbone)) and done + errors > 0
        if more:
            # Batched like a backfill: one chunk per task, so a lost worker costs one chunk and
            # the broker's visibility timeout can redeliver it.
            embed_project.apply_async(args=(project.pk,), kwargs={"token": token})
            return {"embedded": done, "errors": errors, "swapped": swapped, "more": True}
        Project.objects.filter(pk=project.pk).update(
            embed_status="done", embed_updated_at=timezone.now(), embed_message=""
        )
    except Exception as exc:
        Project.objects.filter(pk=project.pk).update(
            embed_status="failed", embed_message=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    finally:
        if not more:
            Project.objects.filter(pk=project.pk, embed_token=token).update(
                embed_requested_at=None, embed_token=""
            )
    project.refresh_from_db()
    # Items imported while this ran were refused a second task by the guard: pick them up now.
    if not _store_complete(project):
        request_embedding(project)
    _retrain_after_embedding(project, swapped)
    return {"embedded": done, "errors": errors, "swapped": swapped}


def _retrain_after_embedding(project, swapped: bool) -> bool:
    """Once a project is embedded, retrain if the current model missed labels for want of
    embeddings (labels given while embedding ran: the retrain they triggered could use only the
    items embedded by then), or if the backbone changed. Without labels, the retrain ranks the
    pool by the strategy's cold start, so that the very first items served are chosen, not
    random. Otherwise retrain only if due."""
    from labeler.training.models import Status
    from labeler.training.services import request_retrain, request_retrain_if_due

    labeled = project.items.filter(annotation_count__gt=0).count()
    latest = project.model_versions.filter(status=Status.READY).order_by("-number").first()
    if not labeled or swapped or latest is None or latest.labels_used < labeled:
        return request_retrain(project)
    return request_retrain_if_due(project)


def _current_labels(project) -> tuple[dict[int, int], set[int]]:
    """Item id -> label id, and the audit items.

    A lead's label is authoritative (it is how label errors get corrected); otherwise the
    majority over annotators decides and the latest label breaks ties.
    """
    from labeler.annotations.models import Annotation
    from labeler.projects.models import Membership, Role

    leads = set(
        Membership.objects.filter(project=project, role=Role.LEAD).values_list("user_id", flat=True)
    )
    votes: dict[int, list[tuple[int, object, bool]]] = defaultdict(list)
    audit: set[int] = set()
    from labeler.annotations.current import primary_set_id

    # The primary label set's (the other sets: labeler.annotations.set_labels).
    for item_id, label_id, is_audit, created, annotator in Annotation.objects.filter(
        item__project=project, label_set_id=primary_set_id(project.pk)
    ).values_list("item_id", "label_id", "is_audit", "created_at", "annotator_id"):
        if label_id is None:  # a multi-label primary set: its tags are learnt per set
            continue
        votes[item_id].append((label_id, created, annotator in leads))
        if is_audit:
            audit.add(item_id)
    labels = {}
    for item_id, item_votes in votes.items():
        by_leads = [v for v in item_votes if v[2]]
        if by_leads:
            labels[item_id] = max(by_leads, key=lambda v: v[1])[0]
            continue
        counts = Counter(label for label, _, _ in item_votes)
        best = max(counts.values())
        tied = {label for label, c in counts.items() if c == best}
        labels[item_id] = max((v for v in item_votes if v[0] in tied), key=lambda v: v[1])[0]
    return labels, audit


@shared_task(bind=True, acks_late=True)
def retrain_project(self, project_id: int) -> dict | None:
    """Fit the head on all labels, rank the pool with the project's strategy, store predictions."""
    from labeler.projects.models import Project
    from labeler.training.services import request_retrain_if_due

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        logger.warning("retrain: project %s no longer exists", project_id)
        return None
    try:
        # One BLAS thread: the fits are small, and OpenBLAS's default threads spin and stall on a
        # busy 2-core machine (a 1,000-label fit: 47 s with default threads, 1.1 s with one).
        with threadpool_limits(limits=1, user_api="blas"):
            result = _retrain(project)
    finally:
        Project.objects.filter(pk=project.pk).update(retrain_requested_at=None)
    # Labels that arrived while training ran may already call for the next version.
    request_retrain_if_due(project)
    if result is not None:
        from labeler.training.checks import request_check_if_due

        request_check_if_due(project)  # enough labels for a (new) backbone check?
    return result


def _retrain(project) -> dict | None:
    from labeler.annotations.models import Annotation
    from labeler.projects.models import Project
    from labeler.training.comparison import store_version_files
    from labeler.training.models import ModelVersion, Status
    from labeler.training.set_training import train_other_sets
    from worker.ml.evaluation import measure_version
    from worker.ml.head import LogisticHead

    started = time.monotonic()
    # Taken before the labels are read, so that a label saved meanwhile counts as new.
    mark = Annotation.objects.filter(item__project=project).aggregate(m=Max("id"))["m"] or 0
    labels, audit_items = _current_labels(project)
    labels_total = len(labels)
    store = store_for(project.pk, project.backbone)
    ids, matrix = store.load()
    if len(ids) == 0 or not labels:
        # No model yet, but the strategy can still choose the first items (cold start: the
        # typical items of a covering set of clusters, far better first labels than random).
        ranked = _rank_pool(project, ids, matrix, None, None) if len(ids) else []
        if ranked:
            _store_ranking(project, ranked)
        logger.info("retrain project=%s: %d embeddings, %d labels: no model, %d ranked",
                    project.pk, len(ids), len(labels), len(ranked))
        Project.objects.filter(pk=project.pk).update(
            labels_at_last_retrain=labels_total, retrain_mark=mark
        )
        return None
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    lab_ids = np.array([i for i in labels if i in row_of], dtype=np.int64)
    if len(lab_ids) == 0:
        logger.info("retrain project=%s skipped: labeled items not embedded yet", project.pk)
        return None
    number = (project.model_versions.aggregate(m=Max("number"))["m"] or 0) + 1
    version = ModelVersion.objects.create(
        project=project, number=number, backbone=project.backbone,
        strategy=project.query_strategy, labels_used=len(lab_ids),
    )
    logger.info("retrain project=%s v%d on %d labels", project.pk, number, len(lab_ids))
    try:
        rows = np.array([row_of[int(i)] for i in lab_ids])
        X_lab = np.asarray(matrix[rows], dtype=np.float32)
        y = np.array([labels[int(i)] for i in lab_ids], dtype=np.int64)
        head = LogisticHead().fit(X_lab, y)
        # CV accuracy, confusion matrix, label errors (one cross-validation); audit accuracy.
        is_audit = np.array([int(i) in audit_items for i in lab_ids])
        metrics, extras = measure_version(head, X_lab, y, item_ids=lab_ids, audit=is_audit)
        head.cv_proba_ = None  # used above; the downloadable head does not carry it

        ranked = _rank_pool(project, ids, matrix, head, X_lab, row_of)
        # Predictions for every embedded item (suggestions, grid mode, exports).
        proba = _predict_in_chunks(head, matrix)
        best = proba.argmax(axis=1)
        predicted = head.classes_[best]
        confidence = proba[np.arange(len(best)), best]

        # The other label sets: one head each on the same embeddings (their suggestions).
        set_metrics, set_heads = train_other_sets(
            project, ids, matrix, row_of, audit_items, lambda h: _predict_in_chunks(h, matrix)
        )
        if set_metrics:
            metrics["sets"] = set_metrics
        head_path = Path(settings.MODELS_ROOT) / str(project.pk) / f"v{number}.joblib"
        head_path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {"head": head, "backbone": project.backbone, "classes": head.classes_.tolist(),
             "sets": set_heads},
            head_path,
        )
        # Evaluation head and out-of-fold predictions beside it; every version compared.
        store_version_files(project, number, str(head_path), labels, audit_items, extras,
                            metrics)
        _store_predictions(project, ids, predicted, confidence, ranked)
        if extras["oof"] is not None:  # the item table's confusion-matrix cells
            _store_oof(extras["oof"]["item"], extras["oof"]["predicted"].tolist())
        metrics["seconds"] = round(time.monotonic() - started, 3)
        with transaction.atomic():
            version.status = Status.READY
            version.metrics = metrics
            version.head_file = str(head_path)
            version.finished_at = timezone.now()
            version.save()
            Project.objects.filter(pk=project.pk).update(
                labels_at_last_retrain=labels_total, retrain_mark=mark
            )
        logger.info(
            "retrain project=%s v%d ready in %.1fs: cv_accuracy=%s audit=%s, %d ranked",
            project.pk, number, metrics["seconds"], metrics["cv_accuracy"],
            metrics.get("audit_accuracy"), len(ranked),
        )
        return {"version": number, **metrics}
    except Exception as exc:
        version.status = Status.FAILED
        version.error = f"{type(exc).__name__}: {exc}"
        version.finished_at = timezone.now()
        version.save()
        raise


def _rank_pool(project, ids, matrix, head, X_lab, row_of: dict[int, int] | None = None) -> list[int]:
    """The next ``LABELER_QUERY_POOL_SIZE`` unlabeled items by the project's strategy, best first.

    ``head`` None: no model yet (the strategies' cold start). The ranking is optimised for its
    first ``retrain_every`` items, the ones labeled before the next retrain re-ranks.
    """
    from labeler.items.models import Item
    from worker.ml.strategies import select

    unlabeled = set(
        Item.objects.filter(project=project, annotation_count=0).values_list("pk", flat=True)
    )
    pool_ids = np.array([i for i in ids.tolist() if i in unlabeled], dtype=np.int64)
    if not len(pool_ids):
        return []
    if row_of is None:
        row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    X_pool = np.asarray(matrix[np.array([row_of[int(i)] for i in pool_ids])], dtype=np.float32)
    if X_lab is None:
        X_lab = np.zeros((0, X_pool.shape[1]), dtype=np.float32)
    order = select(
        project.query_strategy, head, X_pool, min(len(pool_ids), settings.LABELER_QUERY_POOL_SIZE),
        X_labeled=X_lab, n_classes=project.classes.count(), batch_size=project.retrain_every,
    )
    return pool_ids[np.asarray(order, dtype=np.int64)].tolist()


def _predict_in_chunks(head, matrix, chunk: int = 20000) -> np.ndarray:
    parts = [
        head.predict_proba(np.asarray(matrix[s : s + chunk], dtype=np.float32))
        for s in range(0, len(matrix), chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(head.classes_)))


def _store_ranking(project, ranked: list[int]) -> None:
    """Make ``ranked`` the project's ranking, in one short transaction."""
    from labeler.items.models import UNRANKED, Item

    table = Item._meta.db_table
    # Found by a read (no index serves query_rank alone), so that the write below is short.
    previous = list(
        Item.objects.filter(project=project, query_rank__lt=UNRANKED).values_list("pk", flat=True)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # The swap: only the few hundred ranked items, old and new.
        cursor.executemany(
            f"UPDATE {table} SET query_rank = %s WHERE id = %s", [(UNRANKED, pk) for pk in previous]
        )
        cursor.executemany(
            f"UPDATE {table} SET query_rank = %s WHERE id = %s",
            [(rank, int(item_id)) for rank, item_id in enumerate(ranked)],
        )


def _store_predictions(project, ids, predicted, confidence, ranked: list[int]) -> None:
    """Write the ranking (one short transaction) and the suggestions (many short ones).

    Annotators keep saving labels and taking items while this runs, so no transaction may hold
    the database for long: on SQLite one writer at a time, on PostgreSQL the rows it updates.
    A suggestion may come from the previous version for a moment, which is harmless.
    """
    from labeler.items.models import Item

    table = Item._meta.db_table
    _store_ranking(project, ranked)
    rows = [
        (int(cls), round(float(conf), 4), int(item_id))
        for item_id, cls, conf in zip(ids.tolist(), predicted.tolist(), confidence.tolist(),
                                      strict=True)
    ]
    for start in range(0, len(rows), PREDICTION_BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET predicted_class_id = %s, predicted_confidence = %s"
                " WHERE id = %s",
                rows[start:start + PREDICTION_BATCH],
            )
        if connection.vendor == "sqlite" and not connection.in_atomic_block:
            # Fold these pages into the database here, so that the write-ahead log stays short
            # and the annotator whose commit crosses SQLite's threshold isn't the one who pays.
            try:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except OperationalError:
                pass  # busy: SQLite's own checkpoint will do it


def _store_oof(item_ids, oof_predicted: list[int]) -> None:
    """Each labelled item's out-of-fold prediction (the item table's confusion-matrix cells)."""
    from labeler.items.models import Item

    table = Item._meta.db_table
    rows = [(int(c), int(i)) for i, c in zip(item_ids.tolist(), oof_predicted, strict=True)]
    for start in range(0, len(rows), PREDICTION_BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {table} SET oof_predicted_id = %s WHERE id = %s",
                               rows[start:start + PREDICTION_BATCH])


#: Rows per write transaction when storing predictions (each holds the write lock a few ms).
PREDICTION_BATCH = 200
