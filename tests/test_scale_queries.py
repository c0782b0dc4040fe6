"""The lead's pages and the exports at scale: their queries do not grow with the pool, and an
export streams in bounded memory (benchmarks/scale_1m.py has the timings at 1,000,000 items).

Each page is requested on a project, then again after the pool (and the labels) grew several
times over; the number of database queries must be the same. A query per item, per label or
per chunk of a non-streaming read would make it grow.
"""

from __future__ import annotations

import base64
import tracemalloc

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeler.insights import maps
from labeler.items.models import Item
from labeler.training.stores import map_location
from worker import storage

from .lead_fixtures import CLASSES, label, retrain

PAGES = {
    "dashboard": lambda pid: reverse("insights:dashboard", args=[pid]),
    "label_errors": lambda pid: reverse("insights:label_errors", args=[pid]),
    "map_data": lambda pid: reverse("insights:map_data", args=[pid]),
    "item_table": lambda pid: reverse("insights:items", args=[pid]),
    "export_csv": lambda pid: reverse("insights:export", args=[pid, "csv"]),
    "export_json": lambda pid: reverse("insights:export", args=[pid, "json"]),
    "export_coco": lambda pid: reverse("insights:export", args=[pid, "coco"]),
    "export_predictions": lambda pid: reverse("insights:export", args=[pid, "predictions"]),
}


def _grow(project, n: int, labelled: int, user, seed: int) -> None:
    """Add n items with embeddings, label `labelled` of them, retrain, map them."""
    from labeler.training.stores import store_for

    before = set(Item.objects.filter(project=project).values_list("pk", flat=True))
    items = [i for i in make_items_from(project, n, len(before)) if i.pk not in before]
    rng = np.random.default_rng(seed)
    # label() wants each item's class by its position in the whole project: the class is pk % 3.
    truth = np.array(Item.objects.filter(project=project).order_by("pk")
                     .values_list("pk", flat=True)) % len(CLASSES)
    centres = np.random.default_rng(7).normal(size=(len(CLASSES), 16)) * 2
    new_ids = np.array([i.pk for i in items])
    X = centres[new_ids % len(CLASSES)] + rng.normal(size=(len(items), 16))
    store = store_for(project.pk, project.backbone)
    store.append(new_ids, X.astype(np.float32))
    store.compact()
    label(project, items[:labelled], truth, user, audit_every=4, flip_every=9)
    retrain(project)
    ids = store.ids()
    # A map as the projection task would store it (its layout is not what is tested here).
    storage.save_arrays(map_location(project.pk, project.backbone), ids=ids.astype(np.int64),
                        xy=rng.normal(size=(len(ids), 2)).astype(np.float32),
                        fingerprint=maps.fingerprint(ids), method="tsne", seconds=0.1)


def make_items_from(project, n: int, offset: int) -> list[Item]:
    Item.objects.bulk_create(
        Item(project=project, image=f"items/{project.pk}/{offset + i}.jpg",
             # Every tenth name is taken by several items, as real imports have.
             original_name=f"dup{i % 7}.jpg" if i % 10 == 0 else f"p{offset + i}.jpg",
             sha256=f"{project.pk:08x}{offset + i:056x}", width=8, height=8)
        for i in range(n)
    )
    return list(Item.objects.filter(project=project).order_by("pk"))


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if getattr(response, "streaming", False):
            for _ in response.streaming_content:
                pass
    return len(ctx.captured_queries)


@pytest.fixture
def growing(db, make_user, project_factory, client):
    lead = make_user("lead")
    project = project_factory("Scale", classes=CLASSES, lead=lead)
    client.force_login(lead)
    return project, lead, client


def test_queries_do_not_grow_with_items_or_labels(growing):
    project, lead, client = growing
    _grow(project, 150, 60, lead, seed=1)
    small = {name: _count(client, url(project.pk)) for name, url in PAGES.items()}
    _grow(project, 1200, 240, lead, seed=2)
    large = {name: _count(client, url(project.pk)) for name, url in PAGES.items()}
    assert Item.objects.filter(project=project).count() == 1350
    assert large == small


def test_map_is_sampled_beyond_max_points(growing, monkeypatch):
    """Past MAX_POINTS the map sends every labelled item plus a uniform sample of the rest."""
    project, lead, client = growing
    _grow(project, 600, 50, lead, seed=3)
    monkeypatch.setattr(maps, "MAX_POINTS", 200)
    payload = client.get(reverse("insights:map_data", args=[project.pk])).json()
    assert payload["sampled"] is True and payload["mapped"] == 600
    assert 50 + 100 <= payload["n"] <= 50 + 300  # labelled + about 200 x 550/600 others
    ids = np.frombuffer(base64.b64decode(payload["ids"]), dtype=np.int32)
    labelled = set(Item.objects.filter(project=project, current_label__isnull=False)
                   .values_list("pk", flat=True))
    assert labelled <= set(ids.tolist())
    label_idx = np.frombuffer(base64.b64decode(payload["label"]), dtype=np.uint8)
    assert int((label_idx != maps.NONE).sum()) == len(labelled)


def _peak_while_streaming(client, url: str) -> tuple[int, int]:
    """(bytes received, peak traced Python allocation while the response streamed)."""
    response = client.get(url)
    assert response.streaming
    tracemalloc.start()
    size = 0
    try:
        for chunk in response.streaming_content:
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, peak


def test_export_streams_in_bounded_memory(growing):
    """Doubling the pool doubles the CSV but not the memory that producing it takes."""
    project, lead, client = growing
    # Both sizes span several read chunks (export_base.CHUNK rows), so both hit the plateau.
    _grow(project, 4000, 100, lead, seed=4)
    url = reverse("insights:export", args=[project.pk, "csv"])
    small_size, small_peak = _peak_while_streaming(client, url)
    _grow(project, 4000, 100, lead, seed=5)
    large_size, large_peak = _peak_while_streaming(client, url)
    assert large_size > 1.9 * small_size
    # Rows are read CHUNK at a time and lines flushed every 500: what grows with the pool is one
    # 64-bit name hash and id per item (export_base.Naming), 64 kB here.
    assert large_peak < 1.25 * small_peak, (small_peak, large_peak)


def test_export_names_are_unique_and_the_first_keeps_the_name(growing):
    """Clashes (also by case, and with a name that looks like a renamed one) resolve the same way
    whatever order names are asked in; the lowest id keeps the plain name."""
    from labeler.insights.export_base import Naming

    project, _, _ = growing
    items = make_items_from(project, 4, 0)
    a, b, c, d = items
    Item.objects.filter(pk=a.pk).update(original_name="x/a.jpg")
    Item.objects.filter(pk=b.pk).update(original_name="A.JPG")
    Item.objects.filter(pk=c.pk).update(original_name=f"{b.pk}-a.jpg")
    Item.objects.filter(pk=d.pk).update(original_name="a.jpg")
    items = list(Item.objects.filter(project=project).order_by("pk"))
    forward = [Naming(project).file_for(i) for i in items]
    naming = Naming(project)
    backward = [naming.file_for(i) for i in reversed(items)][::-1]
    assert forward == backward
    assert forward[0] == "a.jpg" and forward[2] == f"{b.pk}-a.jpg"
    assert len({n.lower() for n in forward}) == 4, forward
    assert forward[1] == f"{b.pk}-{b.pk}-A.JPG"  # its first choice is item c's own name
    assert forward[3] == f"{d.pk}-a.jpg"


def _answer_sets(project, items, user, seed: int) -> None:
    """Answer the other label sets of `items` through the annotators' service (a size per item,
    0-2 colour tags), so that their per-set pages and exports have labels to read."""
    from labeler.annotations.services import Answer, save_answers
    from labeler.projects.models import SetKind

    rng = np.random.default_rng(seed)
    for label_set in project.label_sets.exclude(pk=project.label_sets.order_by("order", "pk")
                                                .first().pk):
        classes = list(label_set.classes.values_list("pk", flat=True))
        for item in items:
            if label_set.kind == SetKind.MULTI:
                tags = tuple(sorted(rng.choice(classes, size=rng.integers(0, 3), replace=False)
                                    .tolist()))
                answer = Answer(label_set.pk, tags=tags)
            else:
                answer = Answer(label_set.pk, label_id=int(classes[item.pk % len(classes)]))
            save_answers(item, [answer], user, trigger_retrain=False)


def test_other_label_sets_queries_do_not_grow(growing):
    """A second (single-choice) and a third (multi-label) set: every per-set page, the item page
    and every export make as many queries at 1,350 items as at 150."""
    from labeler.projects.label_sets import add_set
    from labeler.projects.models import SetKind

    project, lead, client = growing
    size = add_set(project, "size", SetKind.SINGLE, ["small", "large"])
    colour = add_set(project, "colour", SetKind.MULTI, ["red", "blue", "green"])
    pages = {
        **PAGES,
        "export_folders": lambda pid: reverse("insights:export", args=[pid, "folders"]),
        "dashboard_size": lambda pid: reverse("insights:dashboard", args=[pid]) + f"?set={size.pk}",
        "dashboard_colour": lambda pid: reverse("insights:dashboard", args=[pid])
        + f"?set={colour.pk}",
        "label_errors_size": lambda pid: reverse("insights:label_errors", args=[pid])
        + f"?set={size.pk}",
        "map_size": lambda pid: reverse("insights:map_data", args=[pid]) + f"?set={size.pk}",
        "map_colour": lambda pid: reverse("insights:map_data", args=[pid]) + f"?set={colour.pk}",
        "item": lambda pid: reverse("insights:item", args=[
            pid, Item.objects.filter(project_id=pid).order_by("pk").values_list(
                "pk", flat=True).first()]),
    }

    def grow(n: int, labelled: int, seed: int) -> None:
        before = set(Item.objects.filter(project=project).values_list("pk", flat=True))
        _grow(project, n, labelled, lead, seed=seed)
        new = [i for i in Item.objects.filter(project=project).order_by("pk")
               if i.pk not in before][:labelled]
        _answer_sets(project, new, lead, seed)
        retrain(project)  # the other sets' heads and predictions

    grow(150, 60, seed=11)
    assert (project.model_versions.order_by("-number").first().metrics.get("sets") or {})
    small = {name: _count(client, url(project.pk)) for name, url in pages.items()}
    grow(1200, 240, seed=12)
    large = {name: _count(client, url(project.pk)) for name, url in pages.items()}
    assert large == small
