"""What a GPU worker computes, as plain functions of plain data (no Celery, no Django).

Each function gets everything in its arguments: item ids with their image locations, label
arrays, the backbone, the strategy and its parameters, and the storage locations to read and
write (worker.storage). worker.tasks wraps them as Celery tasks; the web side also calls them
in-process where a test or a benchmark wants a retrain now (labeler.training.retrain.retrain_now).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from worker import artifacts, storage
from worker.ml.embedding_store import EmbeddingStore
from worker.set_learning import learn_sets

logger = logging.getLogger("worker.compute")

#: Unlabeled items a strategy ranks from, at most: a uniform sample of a larger pool (the best of a
#: random 100,000 is in the pool's top 0.01% with probability 1 - e^-10; Ertekin et al. 2007,
#: "Learning on the border"). Keeps a 1M-item retrain to 0.5 GB of float32 and seconds of work.
RANK_CANDIDATES = 100_000

#: ``progress(done, rate)``: called as work advances (the task turns it into heartbeats).
Progress = Callable[[int, float], None]


@lru_cache(maxsize=2)
def get_featurizer(backbone: str, weights_path: str = "", batch_size: int = 0):
    """One featurizer per worker process and backbone: loading weights costs seconds."""
    from worker.ml.featurizer import Featurizer

    return Featurizer(backbone, batch_size=batch_size or None, weights_path=weights_path or None)


def embed_chunk(
    store_location: str, backbone: str, name: str, ids: list[int], images: list[str], *,
    weights: str = "", batch_size: int = 0, progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed one chunk of an embedding job and store it as one object named ``name``.

    All of ``ids`` are embedded (the web side left out what was stored when it cut the chunk),
    and the object is written once, at the end: a chunk redone after its worker died replaces
    the same object, so every item has one embedding in the store however often it ran.
    Returns ``{"embedded": n, "errors": {item id: message}, "rate": images/s}``.
    """
    ids_arr = np.asarray(ids, dtype=np.int64)
    errors: dict[int, str] = {}
    kept: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    rate, done, started = 0.0, 0, time.monotonic()
    if len(ids_arr):
        featurizer = get_featurizer(backbone, weights, batch_size)
        for batch in featurizer.iter_batches(images):
            kept.append(ids_arr[batch.indices])
            rows.append(np.asarray(batch.embeddings))
            for index, message in batch.errors.items():
                errors[int(ids_arr[index])] = message[:1000]
            done += len(batch.indices) + len(batch.errors)
            rate = done / max(time.monotonic() - started, 1e-6)
            if progress is not None:
                progress(done, rate)
    embedded = int(sum(len(k) for k in kept))
    if embedded:
        EmbeddingStore(store_location).put(name, np.concatenate(kept), np.concatenate(rows))
    logger.info("embed %s chunk %s: %d embedded, %d failed (%.1f img/s)", backbone, name,
                embedded, len(errors), rate)
    return {"embedded": embedded, "errors": errors, "rate": rate}


def rank_pool(strategy: str, head, ids: np.ndarray, matrix, labeled: np.ndarray,
              X_lab: np.ndarray | None, *, n_classes: int, query_pool: int,
              retrain_every: int, candidates: int = RANK_CANDIDATES) -> np.ndarray:
    """The next ``query_pool`` unlabeled items by the strategy, best first.

    ``head`` None: no model yet (the strategies' cold start). The ranking is optimised for its
    first ``retrain_every`` items, the ones labeled before the next retrain re-ranks. A pool
    larger than ``candidates`` is ranked from a uniform sample of that many (see
    ``RANK_CANDIDATES``).
    """
    from worker.ml.strategies import select

    rows = np.flatnonzero(~np.isin(ids, labeled))
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    if len(rows) > candidates:  # sorted: reads a memory-mapped store front to back
        rows = np.sort(np.random.default_rng().choice(rows, size=candidates, replace=False))
    X_pool = np.asarray(matrix[rows], dtype=np.float32)
    if X_lab is None:
        X_lab = np.zeros((0, X_pool.shape[1]), dtype=np.float32)
    order = select(strategy, head, X_pool, min(len(rows), query_pool), X_labeled=X_lab,
                   n_classes=n_classes, batch_size=retrain_every)
    return ids[rows[np.asarray(order, dtype=np.int64)]].astype(np.int64)


def _predict_in_chunks(head, matrix, chunk: int = 20000) -> np.ndarray:
    parts = [
        head.predict_proba(np.asarray(matrix[s : s + chunk], dtype=np.float32))
        for s in range(0, len(matrix), chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(head.classes_)))


def train_and_rank(job: dict[str, Any]) -> dict[str, Any]:
    """Fit the head on the labels, measure it, rank the pool, predict every embedded item.

    ``job`` holds ``store`` (embeddings location), ``backbone``, ``strategy``, ``n_classes``,
    ``query_pool``, ``retrain_every``, ``items``/``labels`` (equal-length lists: each labeled
    item's current label), ``audit`` (audit item ids), ``head`` (where the head goes) and
    ``result`` (where the results file goes); with several label sets also ``primary`` (its id,
    name and class ids) and ``sets`` (labeler.training.set_training.plan_sets). Writes the head (+ its evaluation head and
    out-of-fold predictions) and one results file (``ranked``; with a model also ``ids``,
    ``predicted``, ``confidence``, ``oof_item``, ``oof_predicted``). Returns the report the web
    side ingests: ``{"model": bool, "labels_used", "metrics", "ranked"}``.
    """
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the fits are small, and OpenBLAS's default threads spin and stall on a
    # busy 2-core machine (a 1,000-label fit: 47 s with default threads, 1.1 s with one).
    with threadpool_limits(limits=1, user_api="blas"):
        return _train_and_rank(job)


def _train_and_rank(job: dict[str, Any]) -> dict[str, Any]:
    from worker.ml.evaluation import measure_version
    from worker.ml.head import LogisticHead
    from worker.multi_set import learn_jointly  # torch: only where a retrain runs

    started = time.monotonic()
    ids, matrix = EmbeddingStore(job["store"]).load()
    items = np.asarray(job["items"], dtype=np.int64)
    given = np.asarray(job["labels"], dtype=np.int64)
    rank_args = {"n_classes": int(job["n_classes"]), "query_pool": int(job["query_pool"]),
                 "retrain_every": int(job["retrain_every"])}
    embedded = np.isin(items, ids)
    if len(ids) == 0 or not len(items) or not embedded.any():
        # No model yet, but the strategy can still choose the first items (cold start: the
        # typical items of a covering set of clusters, far better first labels than random).
        ranked = (rank_pool(job["strategy"], None, ids, matrix, items, None, **rank_args)
                  if len(ids) and not len(items) else np.zeros(0, dtype=np.int64))
        storage.save_arrays(job["result"], ranked=ranked)
        logger.info("retrain: %d embeddings, %d labels: no model, %d ranked",
                    len(ids), len(items), len(ranked))
        return {"model": False, "labels_used": 0, "metrics": {}, "ranked": int(len(ranked)),
                "skipped": bool(len(items))}
    lab_ids, y = items[embedded], given[embedded]
    row_of = np.searchsorted(ids, lab_ids)
    X_lab = np.asarray(matrix[row_of], dtype=np.float32)
    head = LogisticHead().fit(X_lab, y)
    # CV accuracy, confusion matrix, label errors (one cross-validation); audit accuracy.
    is_audit = np.isin(lab_ids, np.asarray(job["audit"], dtype=np.int64))
    metrics, extras = measure_version(head, X_lab, y, item_ids=lab_ids, audit=is_audit)
    head.cv_proba_ = None  # used above; the downloadable head does not carry it
    # The other label sets: one head each on the same embeddings (worker.set_learning), the
    # multi-task head if it wins on these labels, joint ranking (worker.multi_set).
    set_metrics, set_heads, set_arrays = learn_sets(
        job.get("sets", []), ids, matrix, lambda h: _predict_in_chunks(h, matrix))
    joint = None
    if set_metrics and "primary" in job:
        try:
            joint = learn_jointly(job, ids, matrix, query_pool=rank_args["query_pool"],
                                  retrain_every=rank_args["retrain_every"])
            metrics["head_choice"] = joint.choice
            logger.info("retrain v%s: %s heads (%s)", job.get("number"), joint.choice["kind"],
                        joint.choice.get("scores") or joint.choice.get("reason"))
        except (ValueError, np.linalg.LinAlgError) as exc:  # the sets' own heads still stand
            metrics["head_choice"] = {"kind": "independent", "reason": "the comparison failed",
                                      "error": f"{type(exc).__name__}: {exc}"}
    if set_metrics:
        metrics["sets"] = set_metrics
    ranked = (joint.ranked if joint is not None and joint.ranked is not None
              else rank_pool(job["strategy"], head, ids, matrix, items, X_lab, **rank_args))
    # Predictions for every embedded item (suggestions, grid mode, exports): the chosen head's.
    if joint is not None and joint.model is not None:
        predicted, confidence = joint.predicted, joint.confidence
        set_arrays.update(joint.arrays)
    else:
        proba = _predict_in_chunks(head, matrix)
        best = proba.argmax(axis=1)
        predicted = head.classes_[best]
        confidence = proba[np.arange(len(best)), best].astype(np.float64)
    storage.dump_object(job["head"], {
        "head": head, "backbone": job["backbone"], "classes": head.classes_.tolist(),
        "sets": set_heads, "multitask": joint.model if joint is not None else None,
        "head_choice": joint.choice if joint is not None else None})
    if extras["oof"] is not None:
        artifacts.save_oof(job["head"], extras["oof"])
    if extras["eval_head"] is not None:
        artifacts.save_eval_head(job["head"], extras["eval_head"], job["backbone"],
                                 extras["eval_train_ids"])
    oof = extras["oof"]
    storage.save_arrays(
        job["result"], ranked=ranked, ids=ids, predicted=predicted, confidence=confidence,
        oof_item=oof["item"] if oof is not None else np.zeros(0, np.int64),
        oof_predicted=oof["predicted"] if oof is not None else np.zeros(0, np.int64),
        **set_arrays,
    )
    metrics["seconds"] = round(time.monotonic() - started, 3)
    logger.info("retrain v%s ready in %.1fs: cv_accuracy=%s audit=%s, %d ranked",
                job.get("number"), metrics["seconds"], metrics["cv_accuracy"],
                metrics.get("audit_accuracy"), len(ranked))
    return {"model": True, "labels_used": int(len(lab_ids)), "metrics": metrics,
            "ranked": int(len(ranked)), "eval_head": extras["eval_head"] is not None}


# ---------------------------------------------------------------------------- the embedding map


def fingerprint(ids: np.ndarray) -> str:
    """Which embedded ids a map was computed from (a map of other ids is stale)."""
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


def read_map(location: str) -> dict | None:
    """A stored map: ``ids``, ``xy``, ``fingerprint``, ``method``, ``seconds``; None if absent."""
    try:
        z = storage.load_arrays(location)
        return {"ids": z["ids"], "xy": z["xy"], "fingerprint": str(z["fingerprint"]),
                "method": str(z["method"]), "seconds": float(z["seconds"])}
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return None


def compute_map(store_location: str, out: str, *, method: str = "tsne",
                force: bool = False) -> dict | None:
    """Compute and store the 2-D projection of the store's embeddings (skipped when current)."""
    from worker.ml.projection import project as run_projection

    ids, matrix = EmbeddingStore(store_location).load()
    fp = fingerprint(ids)
    existing = read_map(out)
    if (not force and existing is not None and existing["fingerprint"] == fp
            and (existing["method"] != "pca" or method == "pca")):
        return existing
    if len(ids) == 0:
        return None
    result = run_projection(matrix, method=method)
    storage.save_arrays(out, ids=ids.astype(np.int64), xy=result.xy.astype(np.float32),
                        fingerprint=fp, method=result.method, seconds=result.seconds)
    logger.info("map %s: %d items by %s in %.1fs", out, len(ids), result.method, result.seconds)
    return read_map(out)


# ---------------------------------------------------------------------------- the backbone check

#: ``stage(done, total, text)``: the backbone check's progress.
Stage = Callable[[int, int, str], None]


def check_backbones(job: dict[str, Any], stage: Stage | None = None) -> dict[str, Any]:
    """Embed the labeled items with every other backbone (into that backbone's own store, the
    one a later switch fills) and score how well each transfers (worker.ml.transferability).

    ``job``: ``current`` (the project's backbone), ``wanted`` (backbones to compare; empty:
    every one installed on this machine), ``exclude`` (a backbone being switched to),
    ``store_root`` (the folder of the project's per-backbone stores), ``ids`` (labeled items the
    current backbone has embedded), ``images`` (their locations) and ``y`` (their labels). Writes are plain chunk appends (never a compaction), so they are safe next
    to an embedding job that owns a store. Returns assess_backbones' result plus ``rates``.
    """
    from threadpoolctl import threadpool_limits

    from worker.ml.backbones import installed_backbones
    from worker.ml.transferability import assess_backbones

    ids = np.asarray(job["ids"], dtype=np.int64)
    image_of = dict(zip(ids.tolist(), job["images"], strict=True))
    label_of = dict(zip(ids.tolist(), job["y"], strict=True))
    others = [n for n in (job.get("wanted") or installed_backbones())
              if n != job["current"] and n not in job.get("exclude", [])]
    stores = {name: EmbeddingStore(storage.join(job["store_root"], name))
              for name in [job["current"], *others]}
    total = sum(len(stores[n].missing(ids)) for n in others)
    report = stage or (lambda done, total, text: None)
    report(0, total, "reading labels")
    rates: dict[str, float] = {}
    done = 0
    for name in others:
        todo = stores[name].missing(ids)
        if not len(todo):
            continue
        featurizer = get_featurizer(name, "", 0)
        started = time.monotonic()
        for batch in featurizer.iter_batches([image_of[int(i)] for i in todo]):
            if len(batch.indices):
                stores[name].append(todo[batch.indices], batch.embeddings)
            done += len(batch)
            report(done, total, f"embedding the labeled items with {name}")
        rates[name] = round(len(todo) / max(time.monotonic() - started, 1e-6), 2)
    names = [job["current"], *others]
    for name in names:  # an image a backbone could not decode: left out of all
        ids = ids[~np.isin(ids, stores[name].missing(ids))]
    features = {name: np.asarray(stores[name].take(ids), dtype=np.float32) for name in names}
    y = np.array([label_of[int(i)] for i in ids], dtype=np.int64)
    report(done, total, f"cross-validating {len(features)} backbones on {len(ids)} labels")
    with threadpool_limits(limits=1, user_api="blas"):  # small fits; see train_and_rank
        result = assess_backbones(features, y, job["current"])
    result["rates"] = rates
    return result
