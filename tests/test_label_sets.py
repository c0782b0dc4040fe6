"""Several label sets per project: the data migration, saving a visit's answers through the API,
suggestions and grid per set, and the settings actions (add, rename, reorder, remove, delete)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.items.models import Item, Prediction
from labeler.projects.models import LabelSet, Role

from .label_set_fixtures import two_sets_fixture  # noqa: F401 (the two_sets fixture)

BEFORE = [("projects", "0007_job_fields_to_training_job"), ("annotations", "0001_initial"),
          ("items", "0003_item_table")]
AFTER = [("projects", "0008_label_sets"), ("annotations", "0002_label_sets"),
         ("items", "0004_prediction")]


@pytest.mark.django_db(transaction=True)
def test_migration_gives_every_project_one_set_and_keeps_every_label(django_user_model):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Project, LabelClass = old.get_model("projects", "Project"), old.get_model("projects", "LabelClass")
    Item, Annotation = old.get_model("items", "Item"), old.get_model("annotations", "Annotation")
    User = old.get_model(*django_user_model._meta.label.split("."))
    user = User.objects.create(username="old-annotator")
    expected = {}
    for p in range(2):
        project = Project.objects.create(name=f"old {p}")
        classes = [LabelClass.objects.create(project=project, name=n, order=i)
                   for i, n in enumerate(["cat", "dog"])]
        for i in range(3):
            item = Item.objects.create(project=project, image=f"x{p}{i}.jpg", sha256=f"{p}{i}",
                                       original_name=f"x{i}.jpg", width=1, height=1,
                                       annotation_count=1)
            a = Annotation.objects.create(item=item, label=classes[i % 2], annotator=user,
                                          client_id=uuid.uuid4())
            expected[a.pk] = classes[i % 2].pk

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    NewSet = new.get_model("projects", "LabelSet")
    NewAnnotation = new.get_model("annotations", "Annotation")
    NewClass = new.get_model("projects", "LabelClass")
    for project_id in Project.objects.values_list("pk", flat=True):
        sets = list(NewSet.objects.filter(project_id=project_id))
        assert [(s.name, s.kind) for s in sets] == [("Class", "single")]
        assert set(NewClass.objects.filter(project_id=project_id)
                   .values_list("label_set_id", flat=True)) == {sets[0].pk}
    migrated = {a.pk: (a.label_id, a.label_set_id) for a in NewAnnotation.objects.all()}
    assert {pk: label for pk, (label, _) in migrated.items()} == expected  # no label lost
    assert all(NewClass.objects.get(pk=label).label_set_id == s for label, s in migrated.values())

    # And back: the one set's labels survive the way down too.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(BEFORE)
    assert dict(Annotation.objects.values_list("pk", "label_id")) == expected
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _post(client, project, body):
    return client.post(reverse("annotations:annotate", args=[project.pk]),
                       data=json.dumps(body), content_type="application/json")


def _cls(label_set, name):
    return label_set.classes.get(name=name).pk


def test_one_visit_saves_every_set_and_relabels_in_place(client, two_sets):
    project, types, colours, items, annotator = two_sets
    client.force_login(annotator)
    served = client.get(reverse("annotations:next", args=[project.pk]) + "?n=2").json()["items"]
    item = served[0]["id"]
    cid = str(uuid.uuid4())
    body = {"item": item, "client_id": cid, "seconds": 2, "labels": [
        {"set": types.pk, "label": _cls(types, "shirt")},
        {"set": colours.pk, "tags": [_cls(colours, "red"), _cls(colours, "blue")]},
    ]}
    first = _post(client, project, body)
    assert first.status_code == 201, first.content
    assert _post(client, project, body).status_code == 200  # the retry creates nothing
    rows = Annotation.objects.filter(item_id=item).order_by("label_set__order")
    assert [(r.label_set_id, r.label_id) for r in rows] == [(types.pk, _cls(types, "shirt")),
                                                            (colours.pk, None)]
    assert set(rows[1].tags.values_list("name", flat=True)) == {"red", "blue"}
    assert Item.objects.get(pk=item).annotation_count == 1  # one visit, one count
    assert Item.objects.get(pk=item).current_label_id == _cls(types, "shirt")
    assert sum(r.seconds_spent for r in rows) == 2  # the visit's time counted once

    # Undo + relabel: the same rows change; no tags is an answer too.
    again = _post(client, project, {"item": item, "client_id": str(uuid.uuid4()), "labels": [
        {"set": types.pk, "label": _cls(types, "shoe")}, {"set": colours.pk, "tags": []}]})
    assert again.status_code == 200
    assert Annotation.objects.filter(item_id=item).count() == 2
    assert not Annotation.objects.get(item_id=item, label_set=colours).tags.exists()
    assert Item.objects.get(pk=item).current_label_id == _cls(types, "shoe")
    # The served item is no longer offered to anyone.
    assert item not in [i["id"] for i in client.get(
        reverse("annotations:next", args=[project.pk]) + "?n=6").json()["items"]]


@pytest.mark.parametrize("labels, message", [
    (lambda t, c: [{"set": t.pk, "tags": [_cls(t, "shirt")]}], "takes one label"),
    (lambda t, c: [{"set": c.pk, "label": _cls(c, "red")}], "takes tags"),
    (lambda t, c: [{"set": t.pk, "label": _cls(c, "red")}], "is not in label set"),
    (lambda t, c: [{"set": 10**9, "label": _cls(t, "shirt")}], "Unknown label set"),
    (lambda t, c: [{"set": t.pk, "label": 1, "tags": []}], "Give a list"),
    (lambda t, c: [{"set": t.pk, "label": _cls(t, "shirt")}] * 2, "One answer per"),
    (lambda t, c: {"set": t.pk}, "Give a list"),
])
def test_bad_answers_are_400_with_a_message(client, two_sets, labels, message):
    project, types, colours, items, annotator = two_sets
    client.force_login(annotator)
    r = _post(client, project, {"item": items[0].pk, "labels": labels(types, colours)})
    assert r.status_code == 400 and message in r.json()["error"]
    assert not Annotation.objects.exists()


def test_removed_set_takes_no_answers_but_stays_in_the_data(client, two_sets):
    project, types, colours, items, annotator = two_sets
    client.force_login(annotator)
    _post(client, project, {"item": items[0].pk, "labels": [
        {"set": types.pk, "label": _cls(types, "shirt")},
        {"set": colours.pk, "tags": [_cls(colours, "green")]}]})
    lead = project.memberships.get(role=Role.LEAD).user
    client.force_login(lead)
    url = reverse("projects:settings", args=[project.pk])
    assert client.post(url, {"action": "remove_set", "label_set": colours.pk}).status_code == 302
    assert Annotation.objects.filter(label_set=colours).exists()  # kept until deletion
    config = client.get(reverse("annotations:label", args=[project.pk])).content.decode()
    assert '"name": "colour"' not in config
    client.force_login(annotator)
    r = _post(client, project, {"item": items[1].pk, "labels": [
        {"set": colours.pk, "tags": [_cls(colours, "green")]}]})
    assert r.status_code == 400
    client.force_login(lead)
    refused = client.post(url, {"action": "delete_set", "label_set": colours.pk})
    assert refused.status_code == 400 and LabelSet.objects.filter(pk=colours.pk).exists()
    deleted = client.post(url, {"action": "delete_set", "label_set": colours.pk, "confirm": "on"})
    assert deleted.status_code == 302
    assert not LabelSet.objects.filter(pk=colours.pk).exists()
    assert Annotation.objects.filter(label_set=types).count() == 1


def test_settings_add_rename_reorder_sets_and_classes_per_set(client, two_sets):
    project, types, colours, items, annotator = two_sets
    lead = project.memberships.get(role=Role.LEAD).user
    client.force_login(lead)
    url = reverse("projects:settings", args=[project.pk])
    r = client.post(url, {"action": "add_set", "name": "season", "kind": "single",
                          "classes": "summer, winter"})
    assert r.status_code == 302
    season = project.label_sets.get(name="season")
    assert list(season.classes.values_list("name", flat=True)) == ["summer", "winter"]
    # Hotkeys continue where the other sets stop: no key answers two sets.
    keys = list(project.classes.values_list("hotkey", flat=True))
    assert len(keys) == len(set(keys)) == 7
    assert client.post(url, {"action": "add_set", "name": "season", "kind": "single"}
                       ).status_code == 400
    assert client.post(url, {"action": "add_set", "name": "x", "kind": "both"}).status_code == 400
    client.post(url, {"action": "edit_set", "label_set": season.pk, "name": "Season"})
    client.post(url, {"action": "move_set", "label_set": season.pk, "direction": "up"})
    assert [s.name for s in project.label_sets.all()] == ["Class", "Season", "colour"]
    # A class goes to the set the page shows; a class name may repeat across sets.
    client.post(url + f"?set={season.pk}", {"action": "add_class", "name": "shirt",
                                            "label_set": season.pk})
    assert season.classes.filter(name="shirt").exists()
    page = client.get(url + f"?set={season.pk}").content.decode()
    assert "Classes of Season" in page
    # The first set cannot be left without others: the last active set stays.
    for s in project.label_sets.exclude(pk=types.pk):
        client.post(url, {"action": "remove_set", "label_set": s.pk})
    assert client.post(url, {"action": "remove_set", "label_set": types.pk}).status_code == 400


def test_suggestions_and_grid_per_set(client, two_sets):
    project, types, colours, items, annotator = two_sets
    red, blue = _cls(colours, "red"), _cls(colours, "blue")
    Item.objects.filter(pk=items[0].pk).update(predicted_class_id=_cls(types, "shoe"),
                                               predicted_confidence=0.9)
    Prediction.objects.bulk_create([
        Prediction(item=items[0], label_set=colours, label_id=red, confidence=0.8),
        Prediction(item=items[1], label_set=colours, label_id=red, confidence=0.95),
        Prediction(item=items[1], label_set=colours, label_id=blue, confidence=0.6),
        Prediction(item=items[2], label_set=colours, label=None, confidence=0.7),
    ])
    client.force_login(annotator)
    grid = client.get(reverse("annotations:grid_items", args=[project.pk]) + f"?label={red}")
    assert [i["id"] for i in grid.json()["items"]] == [items[1].pk, items[0].pk]
    assert grid.json()["items"][0]["suggestion"]["confidence"] == 0.95
    served = {i["id"]: i for i in client.get(
        reverse("annotations:next", args=[project.pk]) + "?n=6").json()["items"]}
    assert served[items[0].pk]["suggestion"]["label"] == _cls(types, "shoe")
    assert {(p["set"], p["label"]) for p in served[items[1].pk]["suggestions"]} == {
        (colours.pk, red), (colours.pk, blue)}
    assert served[items[2].pk]["suggestions"] == [
        {"set": colours.pk, "label": None, "confidence": 0.7}]
    confirm = client.post(reverse("annotations:grid_confirm", args=[project.pk]),
                          data=json.dumps({"label": blue, "confirmed": [items[3].pk]}),
                          content_type="application/json")
    assert confirm.status_code == 200
    row = Annotation.objects.get(item=items[3], label_set=colours)
    assert list(row.tags.values_list("pk", flat=True)) == [blue] and row.label_id is None


def _label_three(client, project, types, colours, items, annotator):
    client.force_login(annotator)
    answers = [("shirt", ["red", "blue"]), ("shoe", []), ("shoe", ["green"])]
    for item, (kind, tags) in zip(items, answers, strict=False):
        r = _post(client, project, {"item": item.pk, "labels": [
            {"set": types.pk, "label": _cls(types, kind)},
            {"set": colours.pk, "tags": [_cls(colours, t) for t in tags]}]})
        assert r.status_code == 201


def test_exports_carry_every_set(client, two_sets):
    import csv
    import io
    import zipfile

    project, types, colours, items, annotator = two_sets
    _label_three(client, project, types, colours, items, annotator)
    client.force_login(project.memberships.get(role=Role.LEAD).user)

    def get(fmt):
        r = client.get(reverse("insights:export", args=[project.pk, fmt]))
        assert r.status_code == 200
        return b"".join(r.streaming_content)

    rows = list(csv.DictReader(io.StringIO(get("csv").decode())))
    by_id = {int(r["item_id"]): r for r in rows}
    assert by_id[items[0].pk]["label"] == "shirt"
    assert by_id[items[0].pk]["label:colour"] == "blue|red"
    assert by_id[items[1].pk]["label:colour"] == ""
    assert by_id[items[2].pk]["label:colour"] == "green"

    data = json.loads(get("json"))
    assert [s["name"] for s in data["label_sets"]] == ["Class", "colour"]
    item0 = next(i for i in data["items"] if i["id"] == items[0].pk)
    assert item0["sets"][0]["label"] == "shirt" and item0["sets"][1]["tags"] == ["blue", "red"]
    item1 = next(i for i in data["items"] if i["id"] == items[1].pk)
    assert item1["sets"][1]["tags"] == []  # "no tags" is an answer, unlike unlabelled (None)
    assert next(i for i in data["items"] if i["id"] == items[4].pk)["sets"][1]["tags"] is None

    names = zipfile.ZipFile(io.BytesIO(get("folders"))).namelist()
    files = {r["item_id"]: r["file"] for r in rows}
    f0 = files[str(items[0].pk)]
    assert {f"Class/shirt/{f0}", f"colour/red/{f0}", f"colour/blue/{f0}"} <= set(names)
    assert f"colour/green/{files[str(items[2].pk)]}" in names

    coco = json.loads(get("coco"))
    supers = {c["name"]: c["supercategory"] for c in coco["categories"]}
    assert supers["red"] == "colour" and supers["shirt"] == "Class"
    cats = {a["category_id"] for a in coco["annotations"] if a["image_id"] == items[0].pk}
    assert cats == {_cls(types, "shirt"), _cls(colours, "red"), _cls(colours, "blue")}

    # A removed set is still exported until the lead deletes it.
    url = reverse("projects:settings", args=[project.pk])
    client.post(url, {"action": "remove_set", "label_set": colours.pk})
    rows = list(csv.DictReader(io.StringIO(get("csv").decode())))
    assert {r["label:colour"] for r in rows} >= {"blue|red", "green"}


@pytest.mark.django_db(transaction=True)
def test_make_run_demo_has_a_project_with_several_label_sets():
    from django.core.management import call_command

    from labeler.projects.demo_multitask import NAME, multitask_dataset

    if not (multitask_dataset() / "labels.csv").is_file():
        pytest.skip(f"multi-task photos not found at {multitask_dataset()} (../shared is absent)")
    call_command("setup_demo", "--create-admin", "--limit", "5")
    from labeler.projects.models import Project

    project = Project.objects.get(name=NAME)
    sets = list(project.label_sets.all())
    assert [(s.name, s.kind) for s in sets] == [
        ("type", "single"), ("colour", "single"), ("season", "single"), ("usage", "single"),
        ("tags", "multi")]
    assert project.items.count() == 5 and not Annotation.objects.exists()
    # Keys: digits answer the first set; every class of a set has its own key.
    first = sets[0].classes.order_by("order").values_list("hotkey", flat=True)
    assert first[0] == "1"
    for s in sets:
        keys = [k for k in s.classes.values_list("hotkey", flat=True)]
        assert all(keys) and len(set(keys)) == len(keys)
    call_command("setup_demo", "--limit", "5")  # idempotent
    assert project.items.count() == 5


def test_item_inspector_shows_every_set_and_tags_need_labels(client, two_sets):
    project, types, colours, items, annotator = two_sets
    _label_three(client, project, types, colours, items, annotator)
    # A tag is not a "label": the one-class API refuses it (tags go with "labels").
    r = _post(client, project, {"item": items[3].pk, "label": _cls(colours, "red")})
    assert r.status_code == 404
    client.force_login(project.memberships.get(role=Role.LEAD).user)
    page = client.get(reverse("insights:item", args=[project.pk, items[0].pk])).content.decode()
    assert 'id="item-sets"' in page and "blue, red" in page and "colour: " in page
    page = client.get(reverse("insights:item", args=[project.pk, items[1].pk])).content.decode()
    assert "no tags" in page
