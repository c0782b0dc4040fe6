"""Next-item leasing, idempotent saves and the retrain trigger, through the real HTTP API."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.annotations.queue import next_items
from labeler.annotations.services import save_annotation
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.actions import do_finish_job, do_start_job
from labeler.training.models import Job
from labeler.training.services import retraining

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(make_user, project_factory, add_images):
    project = project_factory(retrain_every=3, audit_share=0.0)
    items = add_images(project, 8)
    alice, bob = make_user("alice"), make_user("bob")
    set_member(project, alice, Role.ANNOTATOR)
    set_member(project, bob, Role.ANNOTATOR)
    return project, items, alice, bob


def post_label(client, project, item_id, label_id, client_id=None):
    return client.post(
        reverse("annotations:annotate", args=[project.pk]),
        data=json.dumps({"item": item_id, "label": label_id, "seconds": 1.5,
                         "client_id": client_id or str(uuid.uuid4())}),
        content_type="application/json",
    )


def test_two_annotators_never_share_an_item(client, setup):
    project, items, alice, bob = setup
    a = next_items(project, alice, 4)
    b = next_items(project, bob, 4)
    assert len(a) == 4 and len(b) == 4
    assert not {i.pk for i in a} & {i.pk for i in b}
    # Asking again returns the items already held (a reload shows the same image).
    assert [i.pk for i in next_items(project, alice, 4)] == [i.pk for i in a]
    # Nothing left for a third request by bob beyond what he holds.
    assert {i.pk for i in next_items(project, bob, 8)} == {i.pk for i in b}


def test_save_is_idempotent_and_next_is_unlabeled(client, setup):
    project, items, alice, _ = setup
    client.force_login(alice)
    label = project.classes.first()
    item = client.get(reverse("annotations:next", args=[project.pk])).json()["items"][0]
    cid = str(uuid.uuid4())
    first = post_label(client, project, item["id"], label.pk, cid)
    retry = post_label(client, project, item["id"], label.pk, cid)
    assert first.status_code == 201 and retry.status_code == 200
    assert first.json()["id"] == retry.json()["id"]
    assert Annotation.objects.count() == 1
    nxt = client.get(reverse("annotations:next", args=[project.pk])).json()["items"][0]
    assert nxt["id"] != item["id"]


def test_bad_requests_are_clear(client, setup, project_factory):
    project, items, alice, _ = setup
    client.force_login(alice)
    url = reverse("annotations:annotate", args=[project.pk])
    assert client.post(url, data="{", content_type="application/json").status_code == 400
    other_class = project_factory("Other", classes=["x"]).classes.get()
    response = post_label(client, project, items[0].pk, other_class.pk)
    assert response.status_code == 404 and "Unknown" in response.json()["error"]
    response = post_label(client, project, items[0].pk, project.classes.first().pk, "nope")
    assert response.status_code == 400


def test_relabel_edits_the_annotation(setup):
    project, items, alice, _ = setup
    first, second = project.classes.all()[:2]
    save_annotation(items[0], first, alice)
    annotation, created = save_annotation(items[0], second, alice)
    assert not created and annotation.label == second
    items[0].refresh_from_db()
    assert items[0].annotation_count == 1


def test_audit_share_is_respected(setup):
    project, items, alice, _ = setup
    project.audit_share = 0.3
    project.save()
    rng = random.Random(0)
    audits = 0
    for _ in range(400):
        item = next_items(project, alice, 1, rng=rng)[0]
        audits += item.lease_is_audit
        # give it back so the next draw starts from the same pool
        type(item).objects.filter(pk=item.pk).update(leased_by=None, lease_expires_at=None)
    assert 0.22 < audits / 400 < 0.38


def test_audit_flag_is_recorded(setup):
    project, items, alice, _ = setup
    project.audit_share = 1.0
    project.save()
    item = next_items(project, alice, 1)[0]
    annotation, _ = save_annotation(item, project.classes.first(), alice)
    assert annotation.is_audit


def retrained_up_to(project, mark: int) -> None:
    """As if a retrain had read every label up to annotation ``mark`` (its job's cursor)."""
    job = do_start_job(project, Job.Kind.RETRAIN, cursor=mark)
    assert do_finish_job(job.pk, job.token)


def test_retrain_guard_allows_one_request_at_a_time(setup, redis_url):
    from labeler.training.services import request_retrain

    project = setup[0]
    assert request_retrain(project) is True
    assert request_retrain(project) is False
    assert retraining(project)


@pytest.mark.django_db(transaction=True)
def test_concurrent_leasing_hands_out_each_item_once(make_user, project_factory, add_images):
    """Threads with their own database connections race for items: no item is handed out twice."""
    import threading

    from django.db import connection

    project = project_factory("Race", audit_share=0.2)
    add_images(project, 40)
    users = [make_user(f"u{i}") for i in range(6)]
    got: dict[str, list[int]] = {u.username: [] for u in users}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def work(user):
        try:
            barrier.wait()
            for _ in range(10):
                items = next_items(project, user, 2, exclude=got[user.username])
                got[user.username].extend(i.pk for i in items)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    handed = [pk for pks in got.values() for pk in pks]
    assert len(handed) == len(set(handed)) == 40


def test_current_label_is_majority_but_a_lead_decides(make_user, project_factory, add_images):
    from labeler.annotations.current import current_labels

    project = project_factory("Votes", overlap=3)
    item, other = add_images(project, 2)
    cat, dog, _ = project.classes.all()
    a, b, lead = make_user("a"), make_user("b"), make_user("boss")
    set_member(project, lead, Role.LEAD)
    save_annotation(item, cat, a, trigger_retrain=False)
    save_annotation(item, cat, b, trigger_retrain=False)
    save_annotation(other, dog, a, trigger_retrain=False)
    assert current_labels(project)[0] == {item.pk: cat.pk, other.pk: dog.pk}
    save_annotation(item, dog, lead, trigger_retrain=False)  # the lead's correction wins
    assert current_labels(project)[0][item.pk] == dog.pk
    # The item's denormalised column, set by the save itself, follows the same rule; a staff
    # user acts as a lead too.
    item.refresh_from_db()
    assert item.current_label_id == dog.pk and item.annotation_count == 3
    save_annotation(other, cat, make_user("root", staff=True), trigger_retrain=False)
    save_annotation(other, dog, b, trigger_retrain=False)
    other.refresh_from_db()
    assert other.current_label_id == cat.pk == current_labels(project)[0][other.pk]


def test_overlap_serves_each_item_to_k_different_annotators(make_user, project_factory, add_images):
    project = project_factory("Overlap", overlap=2, audit_share=0.0)
    items = add_images(project, 3)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    label = project.classes.first()
    # Alice labels everything; bob may still get every item (overlap 2), carol too until bob
    # has labeled them.
    for item in items:
        save_annotation(item, label, alice)
    assert next_items(project, alice, 5) == []
    got = next_items(project, bob, 5)
    assert {i.pk for i in got} == {i.pk for i in items}
    assert next_items(project, carol, 5) == []  # bob holds them all
    first = got[0]
    first.refresh_from_db()
    save_annotation(first, label, bob)
    # The item bob labeled has its two labels: nobody gets it again; his other leases stay his.
    assert {i.pk for i in next_items(project, bob, 5)} == {i.pk for i in got[1:]}
    assert next_items(project, carol, 5) == []


def test_skipped_and_excluded_items_are_not_served(setup):
    from labeler.annotations.services import skip_item

    project, items, alice, _ = setup
    first = next_items(project, alice, 1)[0]
    skip_item(first, alice, "blurry")
    served = {i.pk for i in next_items(project, alice, 8)}
    assert first.pk not in served and len(served) == len(items) - 1
    assert next_items(project, alice, 8, exclude=served) == []


def test_retrain_is_due_after_enough_new_labels_of_this_project(
    setup, project_factory, add_images, redis_url
):
    from labeler.training.services import request_retrain_if_due

    project, items, alice, _ = setup  # retrain_every=3
    other = project_factory("Elsewhere", retrain_every=3)
    other_items = add_images(other, 3)
    label = project.classes.first()
    save_annotation(items[0], label, alice, trigger_retrain=False)
    save_annotation(items[1], label, alice, trigger_retrain=False)
    # Labels in another project don't count toward this one.
    for item in other_items:
        save_annotation(item, other.classes.first(), alice, trigger_retrain=False)
    assert request_retrain_if_due(project) is False
    # A retrain has seen everything up to here: only labels after its mark are new.
    last = Annotation.objects.order_by("-pk").first().pk
    retrained_up_to(project, last)
    save_annotation(items[2], label, alice, trigger_retrain=False)
    save_annotation(items[3], label, alice, trigger_retrain=False)
    assert request_retrain_if_due(project) is False
    save_annotation(items[4], label, alice, trigger_retrain=False)
    assert request_retrain_if_due(project.pk) is True
    assert retraining(project)
    assert request_retrain_if_due(project) is False  # one at a time



def test_retrain_trigger_counts_items_not_rows_and_stays_cheap(setup, redis_url):
    """Two label sets answered per visit, overlap 2: items count, not rows; and while fewer
    rows than retrain_every were saved since the last retrain, the check reads one row only."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labeler.annotations.services import Answer, save_answers
    from labeler.projects.label_sets import add_set
    from labeler.training.services import request_retrain_if_due

    project, items, alice, bob = setup  # retrain_every=3
    project.overlap = 2
    project.save(update_fields=["overlap"])
    colour = add_set(project, "colour", class_names=["red", "blue"])
    first, red = project.classes.first(), colour.classes.first()
    for item in items[:2]:
        for user in (alice, bob):
            save_answers(item, [Answer(first.label_set_id, first.pk), Answer(colour.pk, red.pk)],
                         user, trigger_retrain=False)
    assert Annotation.objects.count() == 8  # 8 rows, 2 items
    assert request_retrain_if_due(project) is False
    save_annotation(items[2], first, alice, trigger_retrain=False)
    assert request_retrain_if_due(project) is True
    job = Job.objects.get(project=project, kind=Job.Kind.RETRAIN)
    Job.objects.filter(pk=job.pk).update(cursor=Annotation.objects.order_by("-pk").first().pk)
    assert do_finish_job(job.pk, job.token)
    project.retrain_every = 10_000
    project.save(update_fields=["retrain_every"])
    save_annotation(items[3], first, alice, trigger_retrain=False)
    with CaptureQueriesContext(connection) as queries:
        assert request_retrain_if_due(project) is False
    assert len(queries) == 1


def test_embedding_done_retrains_if_the_model_missed_labels(setup, redis_url):
    """Labels given while embedding ran: the retrain they triggered saw only the items embedded
    by then. When embedding finishes, a model that used fewer labels than exist is replaced."""
    from labeler.training.embedding import retrain_after_embedding
    from labeler.training.models import ModelVersion, Status

    project, items, alice, _ = setup
    label = project.classes.first()
    for item in items[:3]:
        save_annotation(item, label, alice, trigger_retrain=False)
    version = ModelVersion.objects.create(
        project=project, number=1, backbone=project.backbone, strategy="auto", labels_used=3,
        status=Status.READY,
    )
    retrained_up_to(project, Annotation.objects.order_by("-pk").first().pk)
    assert retrain_after_embedding(project, swapped=False) is False  # the model has them all
    ModelVersion.objects.filter(pk=version.pk).update(labels_used=1)
    assert retrain_after_embedding(project, swapped=False) is True
    assert retraining(project)


@pytest.mark.django_db(transaction=True)
def test_next_item_never_waits_for_a_row_another_transaction_writes(setup):
    """A retrain's ranking or a pool refresh holds thousands of item rows for a second or more
    at a million items: on PostgreSQL an annotator is served the next free item at once, and
    renewing a held lease skips a locked row, instead of waiting for that transaction."""
    from django.db import connection, connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL row locks; SQLite has one writer at a time anyway")
    import threading

    project, items, alice, bob = setup
    for rank, item in enumerate(items):
        item.query_rank = rank
        item.save(update_fields=["query_rank"])
    held_by_alice = next_items(project, alice, 1)[0]
    assert held_by_alice.pk == items[0].pk
    locked, release = threading.Event(), threading.Event()

    def refresh() -> None:  # as a pool refresh does: rows written, not yet committed
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE items_item SET predicted_confidence = 0.5 WHERE id IN (%s, %s)",
                           [items[0].pk, items[1].pk])
            locked.set()
            release.wait(20)
        connections.close_all()

    writer = threading.Thread(target=refresh)
    writer.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # waiting would fail, not hang the test
        served = next_items(project, bob, 1)
        assert [i.pk for i in served] == [items[2].pk]  # items[1] is locked, items[0] alice's
        assert [i.pk for i in next_items(project, alice, 1)] == [items[0].pk]  # still hers
    finally:
        release.set()
        writer.join(20)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
