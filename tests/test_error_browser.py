"""The error browser: denormalised label columns, the item table's filters, keyset pages, bad
input and roles, nearest neighbours, and the dashboard's links into the table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.annotations.services import save_annotation
from labeler.insights import services
from labeler.insights.neighbours import nearest_rows
from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member

from .test_insights_views import world  # noqa: F401 - the shared project fixture


def _table(client, project, **params):
    return client.get(reverse("insights:items", args=[project.pk]), params)


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:2000]
    return [it.pk for it in response.context["page"].items]


def test_label_columns_follow_the_annotations(world):  # noqa: F811
    project = world["project"]
    labels, audit = services.current_labels(project)
    items = {it.pk: it for it in Item.objects.filter(project=project)}
    assert {i: it.current_label_id for i, it in items.items() if it.current_label_id} == labels
    assert {i for i, it in items.items() if it.has_audit_label} == audit
    # The retrain stored the out-of-fold prediction of every item it trained on, and only those.
    assert {i for i, it in items.items() if it.oof_predicted_id} == set(labels)
    # A lead's relabel is authoritative, and the column follows at once.
    item = world["items"][0]
    save_annotation(item, world["classes"]["bird"], world["lead"], trigger_retrain=False)
    item.refresh_from_db()
    assert item.current_label == world["classes"]["bird"]
    # Who leads matters: the annotator's label wins once the lead's vote is an annotator's...
    other = world["items"][1]  # labelled by the annotator ("dog")
    save_annotation(other, world["classes"]["cat"], world["lead"], trigger_retrain=False)
    other.refresh_from_db()
    assert other.current_label == world["classes"]["cat"]
    set_member(project, world["lead"], Role.ANNOTATOR)  # two votes, the latest wins the tie
    other.refresh_from_db()
    assert other.current_label == world["classes"]["cat"]
    set_member(project, world["annotator"], Role.LEAD)  # now the annotator's is authoritative
    other.refresh_from_db()
    assert other.current_label == world["classes"]["dog"]
    labels, _ = services.current_labels(project)
    assert {i.pk: i.current_label_id for i in Item.objects.filter(current_label__isnull=False)} \
        == labels


def test_filters_match_a_python_scan(world, client):  # noqa: F811
    project = world["project"]
    client.force_login(world["lead"])
    items = list(Item.objects.filter(project=project).order_by("pk"))
    cat, dog = world["classes"]["cat"], world["classes"]["dog"]
    by_ann = set(Annotation.objects.filter(annotator=world["annotator"])
                 .values_list("item_id", flat=True))
    cases = [
        ({}, lambda it: True),
        ({"label": cat.pk}, lambda it: it.current_label_id == cat.pk),
        ({"label": "none"}, lambda it: it.current_label_id is None),
        ({"oof": dog.pk}, lambda it: it.oof_predicted_id == dog.pk),
        ({"label": cat.pk, "oof": cat.pk},
         lambda it: it.current_label_id == it.oof_predicted_id == cat.pk),
        ({"predicted": dog.pk}, lambda it: it.predicted_class_id == dog.pk),
        ({"conf_min": 0.5, "conf_max": 0.9},
         lambda it: it.predicted_confidence is not None and 0.5 <= it.predicted_confidence <= 0.9),
        ({"audit": "0"}, lambda it: not it.has_audit_label),
        ({"labeled_by": world["annotator"].pk}, lambda it: it.pk in by_ann),
        ({"disagree": "on"}, lambda it: it.current_label_id and it.oof_predicted_id
         and it.current_label_id != it.oof_predicted_id),
    ]
    for params, keep in cases:
        expected = [it.pk for it in items if keep(it)]
        assert _ids(_table(client, project, **params)) == expected, params
    assert len(_ids(_table(client, project, labeled_by=world["annotator"].pk))) == 3


def test_keyset_pages_cover_everything_once(world, client, add_images):  # noqa: F811
    project = world["project"]
    add_images(project, 40)  # 64 items: three pages of 25
    client.force_login(world["lead"])
    all_ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    for sort in ("id", "-id"):
        seen, params = [], {"sort": sort, "per_page": 25}
        for _ in range(5):
            r = _table(client, project, **params)
            seen += _ids(r)
            if not r.context["page"].next_cursor:
                break
            params["after"] = r.context["page"].next_cursor
        assert seen == (all_ids if sort == "id" else all_ids[::-1])
    # Confidence order (ties broken by id), only items with a prediction.
    Item.objects.filter(pk__in=all_ids[:10]).update(predicted_confidence=0.5)  # many ties
    rows = list(Item.objects.filter(project=project, predicted_confidence__isnull=False)
                .values_list("predicted_confidence", "pk"))
    for sort, reverse_ in (("confidence", False), ("-confidence", True)):
        seen, params = [], {"sort": sort, "per_page": 25}
        while True:
            r = _table(client, project, **params)
            seen += _ids(r)
            if not r.context["page"].next_cursor:
                break
            params["after"] = r.context["page"].next_cursor
        assert seen == [pk for _, pk in sorted(rows, reverse=reverse_)]
    # The next link carries the filters and the cursor.
    r = _table(client, project, per_page=25, label="none")
    assert "after=" in r.context["next_query"] and "label=none" in r.context["next_query"]


@pytest.mark.parametrize("params, message", [
    ({"label": "999999"}, "Select a valid choice"),
    ({"oof": "cat"}, "Select a valid choice"),
    ({"conf_min": "2"}, "less than or equal to 1"),
    ({"conf_min": "0.9", "conf_max": "0.1"}, "must not exceed"),
    ({"sort": "name; drop table"}, "Select a valid choice"),
    ({"per_page": "1000000"}, "Select a valid choice"),
    ({"after": "abc"}, "Not a page cursor"),
    ({"sort": "confidence", "after": "12"}, "Not a page cursor"),
    ({"labeled_by": "-1"}, "Select a valid choice"),
])
def test_bad_filters_are_400_with_a_message(world, client, params, message):  # noqa: F811
    client.force_login(world["lead"])
    r = _table(client, world["project"], **params)
    assert r.status_code == 400
    assert message in r.content.decode()


def test_roles_and_other_projects(world, client, make_user, project_factory, add_images):  # noqa: F811
    project = world["project"]
    url = reverse("insights:items", args=[project.pk])
    r = client.get(url)
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]
    for user, expected in [(world["annotator"], 403), (world["outsider"], 404),
                           (world["lead"], 200), (make_user("root", staff=True), 200)]:
        client.force_login(user)
        assert client.get(url).status_code == expected, user
    # Another project's items: 404 on this project's item page and relabel, never shown.
    other = project_factory("Other", lead=world["lead"])
    foreign = add_images(other, 1)[0]
    client.force_login(world["lead"])
    assert client.get(reverse("insights:item", args=[project.pk, foreign.pk])).status_code == 404
    r = client.post(reverse("insights:relabel", args=[project.pk, foreign.pk]),
                    json.dumps({"label": world["classes"]["cat"].pk}),
                    content_type="application/json")
    assert r.status_code == 404
    assert foreign.pk not in _ids(_table(client, project, per_page=200))
    # A class of another project is not a valid filter.
    r = _table(client, project, label=other.classes.first().pk)
    assert r.status_code == 400


def test_user_strings_are_escaped(world, client):  # noqa: F811
    project = world["project"]
    item = world["items"][20]
    Item.objects.filter(pk=item.pk).update(original_name='<img src=x onerror="alert(1)">.jpg')
    client.force_login(world["lead"])
    html = _table(client, project, per_page=25).content.decode()
    assert 'onerror="alert(1)"' not in html and "&lt;img src=x" in html
    assert "style=" not in html.split('id="item-filters"')[1]  # no inline styles (strict CSP)
    assert "<script>" not in html


def test_neighbours_exact_and_on_the_item_page(world, client):  # noqa: F811
    X = world["X"].astype(np.float16)
    ids = np.array([it.pk for it in world["items"]], dtype=np.int64)
    # Brute force in float64 agrees with the float16 store's blocked product.
    Xd = X.astype(np.float64)
    Xd /= np.linalg.norm(Xd, axis=1, keepdims=True)
    sims = Xd @ Xd[3]
    sims[3] = -np.inf
    expected = ids[np.argsort(-sims)[:8]].tolist()
    got = nearest_rows(ids, X, int(ids[3]), 8)
    assert [i for i, _ in got] == expected
    assert np.allclose([s for _, s in got], np.sort(sims)[::-1][:8], atol=1e-3)
    assert nearest_rows(ids, X, 10**9, 8) == []
    # A near-duplicate is found first with similarity ~1.
    X2 = np.vstack([X, X[7:8]])
    ids2 = np.append(ids, ids.max() + 1)
    assert nearest_rows(ids2, X2, int(ids2[-1]), 3)[0][0] == ids[7]

    client.force_login(world["lead"])
    item = world["items"][3]
    r = client.get(reverse("insights:item", args=[world["project"].pk, item.pk]))
    assert r.status_code == 200
    shown = [n["item"].pk for n in r.context["neighbours"]]
    assert shown == expected
    html = r.content.decode()
    assert f'data-neighbour="{expected[0]}"' in html
    assert f'?item={item.pk}' in html  # the map link


def test_dashboard_cells_link_to_the_table(world, client):  # noqa: F811
    project = world["project"]
    client.force_login(world["lead"])
    r = client.get(reverse("insights:dashboard", args=[project.pk]))
    cm = r.context["chart_data"]["confusion"]
    assert cm["items_url"] == reverse("insights:items", args=[project.pk])
    assert cm["class_ids"] == [world["classes"][c].pk for c in ("cat", "dog", "bird")]
    # Each cell's count in the CV matrix is the number of items the table shows for it (no
    # label has changed since the retrain).
    for i, given in enumerate(cm["class_ids"]):
        for j, predicted in enumerate(cm["class_ids"]):
            n = len(_ids(_table(client, project, label=given, oof=predicted, per_page=200)))
            assert n == cm["cv"][i][j], (given, predicted)


def test_label_columns_follow_a_class_merge(world):  # noqa: F811
    from labeler.projects.services import merge_classes

    project = world["project"]
    bird, dog = world["classes"]["bird"], world["classes"]["dog"]
    bird_pk = bird.pk
    assert Item.objects.filter(oof_predicted_id=bird_pk).exists()
    oof_either = Item.objects.filter(oof_predicted_id__in=[bird_pk, dog.pk]).count()
    merge_classes(bird, dog)
    assert Item.objects.filter(oof_predicted=dog).count() == oof_either
    labels, _ = services.current_labels(project)
    items = Item.objects.filter(project=project)
    assert {i.pk: i.current_label_id for i in items if i.current_label_id} == labels
    assert not items.filter(oof_predicted_id=bird_pk).exists()
    assert items.filter(current_label=dog).count() == 12


def test_label_errors_filter_by_given_class(world, client):  # noqa: F811
    project = world["project"]
    # Make two label errors: items the head is sure about, labelled as something else.
    cat, dog = world["classes"]["cat"], world["classes"]["dog"]
    save_annotation(world["items"][0], dog, world["annotator"], trigger_retrain=False)  # a cat
    save_annotation(world["items"][1], cat, world["annotator"], trigger_retrain=False)  # a dog
    from labeler.training.retrain import retrain_now

    retrain_now(project)
    client.force_login(world["lead"])
    url = reverse("insights:label_errors", args=[project.pk])
    everything = client.get(url).context["result"]["issues"]
    assert {r["given"].name for r in everything} >= {"cat", "dog"}
    only_dog = client.get(url, {"given": dog.pk}).context["result"]["issues"]
    assert only_dog and {r["given"].name for r in only_dog} == {"dog"}
    assert len(only_dog) == sum(1 for r in everything if r["given"] == dog)
    r = client.get(url, {"given": "x"})
    assert r.status_code == 400 and b"given" in r.content


@pytest.mark.django_db(transaction=True)
def test_migration_backfills_the_label_columns():
    """items 0003 fills current_label / has_audit_label from the annotations already there."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = [("items", "0002_image_names_from_content"), ("annotations", "0001_initial"),
              ("projects", "0004_project_retrain_mark")]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    User = apps.get_model("auth", "User")
    Project = apps.get_model("projects", "Project")
    LabelClass = apps.get_model("projects", "LabelClass")
    Membership = apps.get_model("projects", "Membership")
    OldItem = apps.get_model("items", "Item")
    OldAnnotation = apps.get_model("annotations", "Annotation")
    lead, a, b = (User.objects.create(username=n) for n in ("l", "a", "b"))
    project = Project.objects.create(name="Old")
    Membership.objects.create(project=project, user=lead, role="lead")
    cat, dog = (LabelClass.objects.create(project=project, name=n) for n in ("cat", "dog"))
    items = [OldItem.objects.create(project=project, image=f"x/{i}.jpg", original_name=f"{i}",
                                    sha256=f"{i:064d}", width=1, height=1) for i in range(4)]
    OldAnnotation.objects.create(item=items[0], label=cat, annotator=a, is_audit=True)
    OldAnnotation.objects.create(item=items[1], label=cat, annotator=a)
    OldAnnotation.objects.create(item=items[1], label=dog, annotator=b)  # tie: latest wins
    OldAnnotation.objects.create(item=items[2], label=dog, annotator=a)
    OldAnnotation.objects.create(item=items[2], label=dog, annotator=b)
    OldAnnotation.objects.create(item=items[2], label=cat, annotator=lead)  # the lead decides

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    got = {it.pk: (it.current_label_id, it.has_audit_label)
           for it in Item.objects.filter(project_id=project.pk)}
    assert got == {items[0].pk: (cat.pk, True), items[1].pk: (dog.pk, False),
                   items[2].pk: (cat.pk, False), items[3].pk: (None, False)}
