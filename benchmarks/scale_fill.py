"""Filling a large project fast, for benchmarks/scale_1m.py: items by PostgreSQL COPY, synthetic
clustered embeddings written straight into the real embedding store, labels through the real
service (so the denormalised columns are kept as in production).

At 1,000,000 items the COPY takes well under a minute and the embeddings (float16, 1280 dims:
2.4 GiB) a few minutes, where one INSERT per item would take most of an hour.
"""

from __future__ import annotations

import secrets
import sys
import time

import numpy as np

#: Embedding rows generated and appended per store chunk.
EMBED_CHUNK = 50_000


def log(msg: str) -> None:
    print(f"[scale_1m] {msg}", file=sys.stderr, flush=True)


def copy_items(project_id: int, n_items: int, seed: int = 0) -> None:
    """``n_items`` rows into the item table with one COPY (PostgreSQL only)."""
    from django.db import connection
    from django.utils import timezone

    from labeler.items.models import UNRANKED, Item

    if connection.vendor != "postgresql":
        raise SystemExit("scale_1m fills with COPY: give a PostgreSQL --database-url")
    rng = np.random.default_rng(seed)
    keys = rng.random(n_items)
    now = timezone.now()
    columns = ("project_id", "image", "source", "original_name", "sha256", "width", "height",
               "created_at",
               "random_key", "annotation_count", "query_rank", "embed_error",
               "has_audit_label", "lease_is_audit")
    sql = f"COPY {Item._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    started = time.monotonic()
    with connection.cursor() as cursor, cursor.connection.cursor() as raw:
        with raw.copy(sql) as copy:
            for i in range(n_items):
                digest = f"{i:064x}"
                copy.write_row((project_id, f"items/{project_id}/{digest[:2]}/{digest}.jpg", "",
                                f"img_{i:07d}.jpg", digest, 400, 533, now, float(keys[i]), 0,
                                UNRANKED, "", False, False))
        cursor.execute(f"ANALYZE {Item._meta.db_table}")
    log(f"{n_items} items copied in {time.monotonic() - started:.1f}s")


def item_ids(project_id: int) -> np.ndarray:
    """The project's item ids, sorted, read straight into numpy (no model instances)."""
    from django.db import connection

    from labeler.items.models import Item

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {Item._meta.db_table} WHERE project_id = %s ORDER BY id",
                       [project_id])
        return np.array([r[0] for r in cursor.fetchall()], dtype=np.int64)


def fill_embeddings(project, ids: np.ndarray, n_classes: int, dim: int, seed: int = 0
                    ) -> np.ndarray:
    """Clustered vectors (one cluster per class, so a head has something to learn) into the
    project's store. Returns each item's true class index."""
    from labeler.training.stores import store_for

    rng = np.random.default_rng(seed + 1)
    centers = rng.normal(size=(n_classes, dim)).astype(np.float32)
    truth = rng.integers(0, n_classes, size=len(ids))
    store = store_for(project.pk, project.backbone)
    started = time.monotonic()
    for s in range(0, len(ids), EMBED_CHUNK):
        part = truth[s:s + EMBED_CHUNK]
        X = centers[part] + rng.normal(scale=2.0, size=(len(part), dim)).astype(np.float32)
        store.append(ids[s:s + EMBED_CHUNK], X.astype(np.float16))
    store.compact()
    log(f"{len(ids)} x {dim} embeddings stored in {time.monotonic() - started:.1f}s")
    return truth


def label_some(project, ids: np.ndarray, truth: np.ndarray, user, n: int, seed: int = 0) -> None:
    """``n`` labels on random items, by ``user`` through the real service (no retrain queued)."""
    from labeler.annotations.services import save_annotation
    from labeler.items.models import Item

    rng = np.random.default_rng(seed + 2)
    classes = list(project.classes.order_by("order", "pk"))
    picks = np.sort(rng.choice(len(ids), size=min(n, len(ids)), replace=False))
    started = time.monotonic()
    items = Item.objects.in_bulk(ids[picks].tolist())
    for p in picks.tolist():
        save_annotation(items[int(ids[p])], classes[int(truth[p])], user, seconds_spent=2.0,
                        trigger_retrain=False)
    log(f"{len(picks)} labels saved in {time.monotonic() - started:.1f}s")


def fill(n_items: int, n_annotators: int, n_labels: int, dim: int, n_classes: int = 10) -> dict:
    """The whole project: items, embeddings, a lead with ``n_labels`` labels, annotators."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeler.projects.models import Role
    from labeler.projects.services import create_project, set_member

    call_command("migrate", verbosity=0)
    User = get_user_model()
    project = create_project("Scale", [f"class{i}" for i in range(n_classes)], audit_share=0.1)
    copy_items(project.pk, n_items)
    ids = item_ids(project.pk)
    truth = fill_embeddings(project, ids, n_classes, dim)
    lead = User.objects.create_user("lead", password=secrets.token_hex(8))
    set_member(project, lead, Role.LEAD)
    label_some(project, ids, truth, lead, n_labels)
    annotators = []
    for i in range(n_annotators):
        user = User.objects.create_user(f"annotator{i}", password=secrets.token_hex(8))
        set_member(project, user, Role.ANNOTATOR)
        annotators.append(user.pk)
    return {"project": project.pk, "lead": lead.pk, "annotators": annotators,
            "labels": list(project.classes.values_list("pk", flat=True))}
