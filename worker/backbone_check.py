"""The backbone check task: embed the labeled items with every installed backbone, score each.

Only the labeled items are embedded (a few hundred images per backbone, not the whole project),
into that backbone's own per-project store, the folder a later switch to it fills: the switch
then only embeds the rest. Writes are plain chunk appends (never a compaction), so they are safe
next to an embedding chain that owns the store. The current backbone's store is only read.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from celery import shared_task
from django.conf import settings
from django.utils import timezone
from threadpoolctl import threadpool_limits

from worker.tasks import _current_labels, get_featurizer, store_for

logger = logging.getLogger("worker.backbone_check")


def _update(check_id: int, **fields) -> None:
    from labeler.training.models import BackboneCheck

    BackboneCheck.objects.filter(pk=check_id).update(updated_at=timezone.now(), **fields)


def _embed_labeled(project, check_id: int, name: str, ids: np.ndarray, paths: dict[int, str],
                   done: int, total: int) -> tuple[int, float | None]:
    """Embed the items of ``ids`` missing from ``name``'s store. Returns (done, images/s)."""
    store = store_for(project.pk, name)
    todo = store.missing(ids)
    if not len(todo):
        return done, None
    featurizer = get_featurizer(name, "")
    started = time.monotonic()
    for batch in featurizer.iter_batches([paths[int(i)] for i in todo]):
        if len(batch.indices):
            store.append(todo[batch.indices], batch.embeddings)
        done += len(batch)
        _update(check_id, done=done, stage=f"embedding the labeled items with {name}")
    return done, len(todo) / max(time.monotonic() - started, 1e-6)


@shared_task(bind=True, acks_late=True)
def check_backbones(self, check_id: int) -> dict | None:
    """Run one BackboneCheck (created by labeler.training.checks.request_check)."""
    from labeler.training.models import BackboneCheck

    check = BackboneCheck.objects.select_related("project").filter(pk=check_id).first()
    if check is None or not check.active:
        return None
    try:
        with threadpool_limits(limits=1, user_api="blas"):  # small fits; see retrain_project
            result = _run(check)
    except ValueError as exc:  # too few labels: a plain answer for the lead, not a crash
        _update(check_id, status=BackboneCheck.State.FAILED, finished_at=timezone.now(),
                error=str(exc), stage="")
        return None
    except Exception as exc:
        logger.exception("backbone check %s failed", check_id)
        _update(check_id, status=BackboneCheck.State.FAILED, finished_at=timezone.now(),
                error=f"{type(exc).__name__}: {exc}"[:2000], stage="")
        raise
    _update(check_id, status=BackboneCheck.State.DONE, finished_at=timezone.now(), stage="",
            result=result, labels_used=result["n_labels"])
    return {"check": check_id, "recommended": result["recommended"]}


def _run(check) -> dict:
    from labeler.items.models import Item
    from labeler.training.models import BackboneCheck
    from worker.ml.backbones import installed_backbones
    from worker.ml.transferability import assess_backbones

    project = check.project
    current = project.backbone
    labels, _ = _current_labels(project)
    rows = Item.objects.filter(pk__in=list(labels), embed_error="").values_list("pk", "image")
    paths = {pk: str(Path(settings.MEDIA_ROOT) / name) for pk, name in rows}
    # Only items the current backbone has embedded: its store belongs to the embedding chain.
    ids = store_for(project.pk, current).ids()
    ids = ids[np.isin(ids, np.fromiter(paths, dtype=np.int64))]
    wanted = settings.LABELER_CHECK_BACKBONES or installed_backbones()
    others = [n for n in wanted if n != current and n != project.pending_backbone]
    total = sum(len(store_for(project.pk, n).missing(ids)) for n in others)
    _update(check.pk, status=BackboneCheck.State.RUNNING, backbone=current, total=total, done=0,
            labels_used=len(ids), stage="reading labels")
    rates: dict[str, float] = {}
    done = 0
    for name in others:
        done, rate = _embed_labeled(project, check.pk, name, ids, paths, done, total)
        if rate is not None:
            rates[name] = round(rate, 2)
    features = {}
    for name in [current, *others]:
        store = store_for(project.pk, name)
        have = store.missing(ids)
        ids = ids[~np.isin(ids, have)]  # an image a backbone could not decode: left out of all
        features[name] = store
    features = {name: np.asarray(store.take(ids), dtype=np.float32)
                for name, store in features.items()}
    y = np.array([labels[int(i)] for i in ids], dtype=np.int64)
    _update(check.pk, stage=f"cross-validating {len(features)} backbones on {len(ids)} labels")
    result = assess_backbones(features, y, current)
    items = Item.objects.filter(project=project, embed_error="").count()
    for row in result["rows"]:
        rate = rates.get(row["backbone"])
        row["images_per_s"] = rate
        # What a switch would cost: every item not embedded yet, at the rate measured here.
        left = items - len(store_for(project.pk, row["backbone"]).ids())
        row["switch_minutes"] = round(left / rate / 60, 1) if rate and left > 0 else None
    result["skipped"] = [project.pending_backbone] if project.pending_backbone else []
    names = dict(project.classes.values_list("pk", "name"))
    result["dropped_classes"] = [names.get(c, str(c)) for c in result["dropped_classes"]]
    return result
