"""Benchmark: the API's item list (GET /api/v1/projects/{id}/items/) at 100,000 items and more.

    .venv/bin/python benchmarks/api_items.py [--items 100000] [--keep DIR]

Builds a throw-away SQLite database (or the one DATABASE_URL names) with one project of N
synthetic items (benchmarks/item_table.build: 10 classes, predictions for all, 5 % labelled,
audit flags), then requests pages of 100 through the whole Django stack with a bearer token
(test client: no network): the first page, a page half-way through (a keyset cursor), and the
same filters; next to each, the deep page's query alone, keyset (what the API runs) and paged
with OFFSET to the same depth (what keyset pagination replaces). Prints one line per case and a JSON summary.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cursor_at(item_id: int) -> str:
    """DRF's cursor for "after item_id" (base64 of its query string: p = the last id seen)."""
    return base64.b64encode(f"p={item_id}".encode()).decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--keep", help="data folder to use and keep (default: a temp dir)")
    args = parser.parse_args()
    data_dir = Path(args.keep or tempfile.mkdtemp(prefix="labeler-api-bench-"))
    os.environ["LABELER_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeler.settings")
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    import django

    django.setup()
    import item_table
    import numpy as np
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from labeler.api.tokens import create_token
    from labeler.items.models import Item
    from labeler.projects.services import create_project

    item_table.np = np
    timed = item_table.timed
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    lead = users.create_user(f"lead{time.time_ns()}", password="bench-pass-1")
    annotator = users.create_user(f"ann{time.time_ns()}", password="bench-pass-1")
    project = create_project(f"API bench {time.time_ns()}", [f"class {i}" for i in range(10)],
                             lead=lead)
    t = time.monotonic()
    item_table.build(project, lead, annotator, args.items, np.random.default_rng(0))
    print(f"{connection.vendor}: built {args.items:,} items in {time.monotonic() - t:.0f} s")
    _, token = create_token(lead, "bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"/api/v1/projects/{project.pk}/items/"
    c = list(project.classes.values_list("pk", flat=True))
    ids = Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    mid = ids[args.items // 2]
    cases = {
        "no filter": {},
        "labeled": {"labeled": "true"},
        "unlabeled": {"labeled": "false"},
        "label": {"label": c[3]},
        "audit": {"audit": "true"},
        "predicted class": {"predicted_class": c[2]},
        "confidence 0.4-0.6": {"confidence_min": 0.4, "confidence_max": 0.6},
    }
    from labeler.api.views.items import filtered_items

    results: dict = {"items": args.items, "database": connection.vendor, "pages_ms": {}}
    print(f"{'':24} {'API, whole request':^22} {'deep page, query only':^24}")
    print(f"{'case (pages of 100)':24} {'first page':>11} {'deep page':>10} {'keyset':>12}"
          f" {'OFFSET':>12}")
    for name, query in cases.items():
        def get(extra: dict, q=query) -> None:
            response = client.get(url, {**q, **extra})
            assert response.status_code == 200, response.content[:300]

        first = timed(lambda: get({}))
        deep = timed(lambda: get({"cursor": cursor_at(mid)}))
        qs = filtered_items(project, {k: (v == "true") if v in ("true", "false") else v
                                      for k, v in query.items()})
        depth = qs.filter(pk__lte=mid).count()
        keyset = timed(lambda qs=qs: list(qs.filter(pk__gt=mid).order_by("pk")[:101]), 3)
        offset = timed(lambda qs=qs, k=depth: list(qs.order_by("pk")[k:k + 101]), 3)
        results["pages_ms"][name] = {"first": round(first, 1), "deep": round(deep, 1),
                                     "deep_query_keyset": round(keyset, 1),
                                     "deep_query_offset": round(offset, 1)}
        print(f"{name:24} {first:9.1f}ms {deep:8.1f}ms {keyset:10.1f}ms {offset:10.1f}ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
