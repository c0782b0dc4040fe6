"""Benchmark: the lead's item table at a million items, and nearest neighbours at 100,000.

    .venv/bin/python benchmarks/item_table.py [--items 1000000] [--nn-items 100000] [--keep DIR]

Builds a throw-away SQLite database (or the one DATABASE_URL names) with one project of N
synthetic items (10 classes, predictions for all, 5 % labelled with an out-of-fold prediction,
audit flags, two annotators), then times a page of the table (labeler.insights.browse.page, the
query the view runs) for every filter and sort, on the first page and deep in the table (a
cursor half-way through), against the same query paged with OFFSET (the baseline keyset
pagination replaces). Then times labeler.insights.neighbours.nearest on an embedding store of
``--nn-items`` random 1280-d float16 rows. Prints one line per case and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 5) -> float:
    """Median milliseconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def build(project, lead, annotator, n: int, rng) -> None:
    """Insert n items (and annotations for the labelled 5 %) with plain SQL: bulk_create is
    too slow at a million."""
    from django.db import connection, transaction
    from django.utils import timezone

    from labeler.annotations.models import Annotation
    from labeler.items.models import UNRANKED, Item

    classes = list(project.classes.values_list("pk", flat=True))
    now = timezone.now()
    table = Item._meta.db_table
    cols = ("project_id, image, original_name, sha256, width, height, created_at, random_key,"
            " annotation_count, query_rank, predicted_class_id, predicted_confidence, embed_error,"
            " lease_is_audit, current_label_id, has_audit_label, oof_predicted_id")
    sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * 17)})"
    y = rng.integers(len(classes), size=n)
    pred = np.where(rng.random(n) < 0.85, y, rng.integers(len(classes), size=n))
    oof = np.where(rng.random(n) < 0.8, y, rng.integers(len(classes), size=n))
    conf = np.round(rng.uniform(0.2, 1.0, size=n), 4)
    labelled = rng.random(n) < 0.05
    audit = labelled & (rng.random(n) < 0.1)
    chunk = 20000
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            lab = bool(labelled[i])
            rows.append((
                project.pk, f"items/{project.pk}/x/{i}.jpg", f"img{i}.jpg", f"{project.pk:08x}{i:056x}",
                64, 64, now, float(rng.random()), int(lab), UNRANKED, classes[pred[i]],
                float(conf[i]), "", False, classes[y[i]] if lab else None, bool(audit[i]),
                classes[oof[i]] if lab else None,
            ))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    ids = list(Item.objects.filter(project=project, current_label__isnull=False)
               .values_list("pk", "current_label_id", "has_audit_label"))
    ann = Annotation._meta.db_table
    sql = (f"INSERT INTO {ann} (item_id, label_id, annotator_id, seconds_spent, created_at,"
           " updated_at, source, is_audit) VALUES (%s, %s, %s, 0, %s, %s, 'manual', %s)")
    rows = [(pk, label, (annotator if k % 3 == 0 else lead).pk, now, now, a)
            for k, (pk, label, a) in enumerate(ids)]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else f"ANALYZE {table}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--nn-items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--keep", help="data folder to use and keep (default: a temp dir)")
    args = parser.parse_args()
    data_dir = Path(args.keep or tempfile.mkdtemp(prefix="labeler-table-bench-"))
    os.environ["LABELER_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeler.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    global np
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from labeler.insights import browse, neighbours
    from labeler.items.models import Item
    from labeler.projects.services import create_project
    from labeler.training.stores import store_for

    call_command("migrate", verbosity=0)
    User = get_user_model()
    lead = User.objects.create_user(f"lead{time.time_ns()}", password="bench-pass-1")
    annotator = User.objects.create_user(f"ann{time.time_ns()}", password="bench-pass-1")
    project = create_project(f"Table bench {time.time_ns()}",
                             [f"class {i}" for i in range(10)], lead=lead)
    rng = np.random.default_rng(0)
    t = time.monotonic()
    build(project, lead, annotator, args.items, rng)
    print(f"{connection.vendor}: built {args.items:,} items in {time.monotonic() - t:.0f} s")
    c = list(project.classes.values_list("pk", flat=True))
    ids = Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    mid = ids[args.items // 2]
    mid_conf = Item.objects.get(pk=mid).predicted_confidence
    base = {"sort": "id", "cursor": None, "per_page": 50}
    cases = {
        "no filter": {},
        "newest first": {"sort": "-id"},
        "label": {"label": str(c[3])},
        "unlabelled": {"label": "none"},
        "cell (label x out-of-fold)": {"label": str(c[3]), "oof": str(c[5])},
        "disagreement": {"disagree": True},
        "prediction, least confident": {"predicted": str(c[2]), "sort": "confidence"},
        "confidence 0.4-0.6, by confidence": {"conf_min": 0.4, "conf_max": 0.6,
                                              "sort": "confidence"},
        "audit items": {"audit": "1"},
        "labeled by": {"labeled_by": str(annotator.pk)},
    }
    results: dict = {"items": args.items, "database": connection.vendor, "pages_ms": {}}
    print(f"{'case':38} {'first page':>11} {'deep page':>10} {'OFFSET deep':>12}")
    for name, extra in cases.items():
        data = {**base, **extra}
        first = timed(lambda data=data: browse.page(project, data))
        conf_sort = data["sort"].lstrip("-") == "confidence"
        deep_cursor = (mid_conf, mid) if conf_sort else (None, mid)
        deep_data = {**data, "cursor": deep_cursor}
        deep = timed(lambda d=deep_data: browse.page(project, d))
        # Baseline: the same filters and order, paged with OFFSET to about the same depth.
        qs = browse.filtered(project, data)
        order = ("predicted_confidence", "pk") if conf_sort else ("pk",)
        if data["sort"].startswith("-"):
            order = tuple("-" + o for o in order)
        depth = qs.filter(pk__lt=mid).count() if not conf_sort else args.items // 4
        offset = timed(lambda qs=qs, o=order, k=depth: list(qs.order_by(*o)[k:k + 51]), 3)
        results["pages_ms"][name] = {"first": round(first, 2), "deep": round(deep, 2),
                                     "offset_deep": round(offset, 1)}
        print(f"{name:38} {first:9.2f}ms {deep:8.2f}ms {offset:10.1f}ms")

    store = store_for(project.pk, "bench-nn")
    n = args.nn_items
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        store.append(np.arange(start + 1, start + m + 1, dtype=np.int64),
                     rng.normal(size=(m, args.dim)).astype(np.float16))
    store.compact()
    store_ids, matrix = store.load()
    cpu0 = time.process_time()
    nn_ms = timed(lambda: neighbours.nearest_rows(store_ids, matrix, int(store_ids[n // 3]), 8))
    # CPU time per call as well: on a shared machine the wall time mostly measures the queue.
    cpu_ms = 1000 * (time.process_time() - cpu0) / 6
    load = os.getloadavg()[0]
    results["neighbours_ms"] = {"items": n, "dim": args.dim, "top8_ms": round(nn_ms, 1),
                                "cpu_ms": round(cpu_ms, 1), "load_average": round(load, 1)}
    print(f"nearest neighbours, {n:,} x {args.dim} float16 (memory-mapped): {nn_ms:.0f} ms wall,"
          f" {cpu_ms:.0f} ms CPU (load average {load:.1f} on {os.cpu_count()} cores)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
