"""The bulk paths that keep a 1,000,000-item project fast: suggestions written by COPY + UPDATE
... FROM on PostgreSQL (by short prepared statements on SQLite), the dashboard's counts from two
aggregates, and a ranking drawn from a bounded sample of a large pool.

Run on SQLite and on PostgreSQL (scripts/test.sh); benchmarks/scale_1m.py has the timings."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from django.db import connection

from labeler.insights.services import pool_counts
from labeler.items.models import Item
from labeler.training import ingest
from worker import compute

from .lead_fixtures import CLASSES, embed, label, make_items, retrain


def _xmin(ids: list[int]) -> dict[int, int]:
    """PostgreSQL's row version of each item (a rewritten row gets a new one)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text::bigint FROM items_item WHERE id = ANY(%s)",
                       [ids])
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_suggestions_in_batches_and_unchanged_rows_not_rewritten(project_factory, monkeypatch):
    monkeypatch.setattr(ingest, "BULK_BATCH", 7)  # several COPY batches on PostgreSQL
    monkeypatch.setattr(ingest, "PREDICTION_BATCH", 7)
    project = project_factory("Bulk", classes=["a", "b"])
    items = make_items(project, 30)
    ids = np.array([i.pk for i in items])
    a, b = project.classes.order_by("pk").values_list("pk", flat=True)
    predicted = np.where(np.arange(30) % 3 == 0, a, b)
    confidence = np.linspace(0.4, 0.95, 30)
    ingest.store_predictions(project, ids, predicted, confidence, [int(ids[4])])
    stored = {pk: (c, conf) for pk, c, conf in Item.objects.filter(project=project)
              .values_list("pk", "predicted_class_id", "predicted_confidence")}
    for pk, c, conf in zip(ids.tolist(), predicted.tolist(), confidence.tolist(), strict=True):
        assert stored[pk][0] == c and stored[pk][1] == pytest.approx(conf, abs=1e-4)
    assert Item.objects.get(pk=int(ids[4])).query_rank == 0

    if connection.vendor == "postgresql":
        before = _xmin(ids.tolist())
        changed = predicted.copy()
        changed[:5] = np.where(changed[:5] == a, b, a)  # five suggestions change, 25 do not
        ingest.store_predictions(project, ids, changed, confidence, [int(ids[4])])
        after = _xmin(ids.tolist())
        rewritten = {pk for pk in ids.tolist() if after[pk] != before[pk]}
        assert rewritten == set(ids[:5].tolist())
        assert list(Item.objects.filter(pk__in=ids[:5].tolist()).order_by("pk")
                    .values_list("predicted_class_id", flat=True)) == changed[:5].tolist()


@pytest.mark.django_db(transaction=True)
def test_text_survives_the_copy(project_factory):
    """Embed errors are free text: tabs, newlines, backslashes and quotes go through COPY."""
    project = project_factory("Errors", classes=["a"])
    items = make_items(project, 3)
    messages = {items[0].pk: "bad\tfile\nline two", items[1].pk: r"C:\path\N 'q' \"",
                items[2].pk: "x" * 2000}
    ingest.store_embed_errors(messages)
    stored = dict(Item.objects.filter(project=project).values_list("pk", "embed_error"))
    assert stored[items[0].pk] == messages[items[0].pk]
    assert stored[items[1].pk] == messages[items[1].pk]
    assert stored[items[2].pk] == "x" * 1000


@pytest.mark.django_db(transaction=True)
def test_dashboard_counts_equal_a_count_of_every_item(project_factory, make_user):
    lead = make_user("lead-counts")
    project = project_factory("Counts", classes=CLASSES)
    items = make_items(project, 90)
    truth = embed(project, items, project.backbone)
    label(project, items[:30], truth, lead, audit_every=0, flip_every=5)
    retrain(project)
    Item.objects.filter(pk=items[-1].pk).update(predicted_class=None)  # one item not predicted
    Item.objects.filter(pk__in=[i.pk for i in items[:30:4]]).update(has_audit_label=True)
    rows = list(Item.objects.filter(project=project).values_list(
        "current_label_id", "predicted_class_id", "annotation_count", "has_audit_label"))

    counts = pool_counts(project)

    assert counts["items"] == 90
    assert counts["labels"] == sum(1 for r in rows if r[0] is not None) == 30
    assert counts["audit"] == sum(1 for r in rows if r[3]) > 0
    labelled = Counter(r[0] for r in rows if r[0] is not None)
    predicted = Counter(r[1] for r in rows if r[1] is not None)
    unlabelled = Counter(r[1] for r in rows if r[1] is not None and r[2] == 0)
    assert sum(predicted.values()) == 89
    for d in counts["distribution"]:
        assert (d["labeled"], d["predicted"], d["predicted_unlabeled"]) == (
            labelled[d["id"]], predicted[d["id"]], unlabelled[d["id"]])


def test_a_large_pool_is_ranked_from_a_bounded_sample():
    rng = np.random.default_rng(0)
    ids = np.arange(1, 2001, dtype=np.int64) * 3
    X = rng.normal(size=(2000, 8)).astype(np.float16)
    labeled = ids[:50]

    class Reads(np.ndarray):
        """The store's matrix, remembering how many rows each read took."""

        taken: list[int] = []

        def __getitem__(self, key):
            if isinstance(key, np.ndarray):
                Reads.taken.append(len(key))
            return np.asarray(self).__getitem__(key)

    matrix = X.view(Reads)
    ranked = compute.rank_pool("random", None, ids, matrix, labeled, None, n_classes=3,
                               query_pool=40, retrain_every=10, candidates=300)
    assert Reads.taken == [300]
    assert len(ranked) == len(set(ranked.tolist())) == 40
    assert np.isin(ranked, ids).all() and not np.isin(ranked, labeled).any()
    # A pool under the bound is ranked whole.
    Reads.taken.clear()
    compute.rank_pool("random", None, ids, matrix, labeled, None, n_classes=3, query_pool=40,
                      retrain_every=10, candidates=5000)
    assert Reads.taken == [1950]


@pytest.mark.django_db(transaction=True)
def test_a_large_pool_refreshes_its_suggestions_when_the_labels_grew(project_factory, make_user,
                                                                     monkeypatch, settings):
    from labeler.training import retrain as retrain_module
    from labeler.training.models import ModelVersion

    monkeypatch.setattr(retrain_module, "REFRESH_ALWAYS_ROWS", 0)  # every pool counts as large
    settings.LABELER_QUERY_POOL_SIZE = 10  # the ranked items: not the whole pool
    lead = make_user("lead-refresh")
    project = project_factory("Refresh", classes=CLASSES)
    items = make_items(project, 90)
    truth = embed(project, items, project.backbone)
    label(project, items[:30], truth, lead, audit_every=0)
    retrain(project)  # the first version: every suggestion
    assert Item.objects.filter(project=project, predicted_class__isnull=True).count() == 0
    Item.objects.filter(project=project).update(predicted_class=None)
    label(project, items[30:33], truth, lead, audit_every=0)  # +10%: not yet
    retrain(project)
    # Only the 33 labelled and the 10 ranked items got their suggestion.
    assert Item.objects.filter(project=project, predicted_class__isnull=True).count() == 90 - 43
    label(project, items[33:37], truth, lead, audit_every=0)  # +23% since the first: due
    retrain(project)

    refreshed = [("suggestions_seconds" in v.metrics) for v in
                 ModelVersion.objects.filter(project=project).order_by("number")]
    assert refreshed == [True, False, True]
    # Version 2 wrote only its ranked and labelled items' suggestions; version 3 all of them.
    assert Item.objects.filter(project=project, predicted_class__isnull=True).count() == 0


@pytest.mark.django_db
def test_a_large_pool_waits_after_a_refresh_three_times_as_long_as_it_took(project_factory,
                                                                           monkeypatch):
    """Labels of a young large project grow by a fifth within seconds: without a rest, the pool
    would be rewritten nonstop next to the annotators' requests."""
    from datetime import timedelta

    from django.utils import timezone

    from labeler.training import retrain as retrain_module
    from labeler.training.models import ModelVersion, Status

    monkeypatch.setattr(retrain_module, "REFRESH_ALWAYS_ROWS", 0)
    project = project_factory("Rest", classes=CLASSES)
    finished = timezone.now() - timedelta(seconds=200)
    ModelVersion.objects.create(project=project, number=1, status=Status.READY,
                                backbone=project.backbone, labels_used=1000, finished_at=finished,
                                metrics={"suggestions_seconds": 60.0})
    # Ended 140 s ago, after 60 s of writes: 180 s of rest are due, and 1,200 labels.
    assert not retrain_module.refresh_due(project, project.backbone, 10**6, 5000)
    ModelVersion.objects.filter(number=1).update(finished_at=finished - timedelta(seconds=41))
    assert retrain_module.refresh_due(project, project.backbone, 10**6, 1200)
    assert not retrain_module.refresh_due(project, project.backbone, 10**6, 1199)


@pytest.mark.django_db(transaction=True)
def test_two_ingests_take_turns_instead_of_deadlocking(project_factory):
    """A version's pool refresh and the next version's first writes update overlapping rows in
    no fixed order: on PostgreSQL each bulk transaction waits for the other's (ingest.BULK_LOCK),
    which a deadlock found in benchmarks/scale_1m.py at 1M items called for."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL row locks; SQLite has one writer at a time anyway")
    import threading

    from django.db import connections, transaction

    project = project_factory("Turns", classes=["a", "b"])
    ids = np.array([i.pk for i in make_items(project, 20)])
    a = project.classes.order_by("pk").values_list("pk", flat=True)[0]
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def first_ingest() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            ingest.bulk_lock(cursor)
            held.set()
            release.wait(10)
        connections.close_all()

    def second_ingest() -> None:
        ingest.store_predictions(project, ids, np.full(20, a), np.full(20, 0.9), [])
        done.set()
        connections.close_all()

    threads = [threading.Thread(target=first_ingest), threading.Thread(target=second_ingest)]
    threads[0].start()
    assert held.wait(10)
    threads[1].start()
    assert not done.wait(1.0)  # waits for the first transaction's turn
    release.set()
    for t in threads:
        t.join(20)
    assert done.is_set()
    assert Item.objects.filter(pk__in=ids.tolist(), predicted_class_id=a).count() == 20
