"""Two label sets in real Chromium with real parts: product photos of the shared multi-task
dataset, a real Celery worker embedding them with the pretrained backbone and retraining.
An annotator labels garment type (single choice, digits) and colour tags (multi-label, letters)
by keyboard only, sees the model's suggestions for both sets after the retrain, accepts them
with Enter; the lead exports both sets."""

from __future__ import annotations

import csv
import io
import json

import pytest

from labeler.annotations.models import Annotation
from labeler.items.importing import Importer
from labeler.projects.label_sets import add_set, primary_set
from labeler.projects.models import Project, Role, SetKind
from labeler.projects.services import set_member
from labeler.training.models import ModelVersion, Status

from .conftest import REPO, wait_for
from .test_browser import PASSWORD, settle, shown_id, wait_image

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

FASHION = REPO.parent / "shared" / "datasets" / "fashion-multitask"
TYPES = ("Tshirts", "Casual Shoes")
COLOURS = ("Black", "White", "Blue")


def _photos(per_type: int = 8) -> list[dict]:
    if not (FASHION / "labels.csv").is_file():
        pytest.skip(f"multi-task photos not found at {FASHION} (../shared is absent here)")
    rows = list(csv.DictReader((FASHION / "labels.csv").open()))
    chosen = []
    for kind in TYPES:
        chosen += [r for r in rows if r["type"] == kind and r["colour"] in COLOURS][:per_type]
    return chosen


def _login(browser, live_server, username, path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{live_server.url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    return page


@pytest.mark.django_db(transaction=True)
def test_two_sets_by_keyboard_suggestions_after_retrain_and_export(
    live_server, browser, celery_worker, make_user, project_factory
):
    photos = _photos()
    lead = make_user("lead", password=PASSWORD)
    project = project_factory("Fashion sets", classes=TYPES, lead=lead, retrain_every=6,
                              audit_share=0.0)
    types = primary_set(project)
    colours = add_set(project, "colour", SetKind.MULTI, COLOURS)
    annotator = make_user("annie", password=PASSWORD)
    set_member(project, annotator, Role.ANNOTATOR)
    importer = Importer(project)
    truth = {}
    for row in photos:
        item = importer.add(row["file"], (FASHION / "images" / row["file"]).read_bytes())
        truth[item.pk] = row
    importer.finish()
    wait_for(lambda: Project.objects.get(pk=project.pk).embed_status == "done", 240, 1,
             "the worker to embed the photos")
    type_key = {c.name: c.hotkey for c in types.classes.all()}
    colour_key = {c.name: c.hotkey for c in colours.classes.all()}
    assert set(type_key.values()) == {"1", "2"} and set(colour_key.values()) == {"a", "b", "c"}

    page = _login(browser, live_server, "annie", f"/projects/{project.pk}/label/")
    wait_image(page)
    assert page.locator(".label-set").count() == 2
    labelled = []
    for _ in range(6):
        item_id = shown_id(page)
        row = truth[item_id]
        page.keyboard.press(type_key[row["type"]])        # type: focus moves on to colour
        page.keyboard.press(colour_key[row["colour"]])    # toggle the colour tag on ...
        page.keyboard.press("Tab")                        # (Tab cycles the sets; harmless)
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")                      # ... and submit both sets
        page.wait_for_function(
            "id => document.querySelector('#current-image').dataset.itemId !== String(id)",
            arg=item_id)
        labelled.append(item_id)
    # Undo: the last image comes back with both answers shown; change the type, Enter saves.
    last = labelled[-1]
    page.keyboard.press("z")
    page.wait_for_function(
        "id => document.querySelector('#current-image').dataset.itemId === String(id)", arg=last)
    assert page.locator(".class-button.chosen").count() == 2
    other = next(t for t in TYPES if t != truth[last]["type"])
    page.keyboard.press(type_key[other])
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => document.querySelector('#current-image').dataset.itemId !== String(id)", arg=last)
    settle(page, lambda: page.locator("#save-status").inner_text() == "all saved", "saves")
    assert Annotation.objects.get(item_id=last, label_set=types).label.name == other
    truth[last] = {**truth[last], "type": other}
    for item_id in labelled:
        rows = {a.label_set_id: a for a in Annotation.objects.filter(item_id=item_id)}
        assert rows[types.pk].label.name == truth[item_id]["type"]
        assert [t.name for t in rows[colours.pk].tags.all()] == [truth[item_id]["colour"]]

    # The 6th visit queued a retrain; the page picks up the new model's suggestions for both.
    version = wait_for(lambda: ModelVersion.objects.filter(
        project=project, status__in=[Status.READY, Status.FAILED]).first(), 240, 1, "a model")
    assert version.status == Status.READY, version.error
    assert str(colours.pk) in version.metrics["sets"]
    settle(page, lambda: "colour:" in page.locator("#suggestion").inner_text()
           and "Class:" in page.locator("#suggestion").inner_text(),
           "suggestions for both sets", timeout=30)
    item_id = shown_id(page)
    suggested = page.locator(".label-set .class-button.suggested").count()
    assert suggested >= 1
    page.keyboard.press("Enter")                          # accept both suggestions
    page.wait_for_function(
        "id => document.querySelector('#current-image').dataset.itemId !== String(id)",
        arg=item_id)
    settle(page, lambda: Annotation.objects.filter(item_id=item_id).count() == 2,
           "the accepted suggestions")
    accepted = {a.label_set_id: a for a in Annotation.objects.filter(item_id=item_id)}
    assert accepted[types.pk].label_id is not None
    assert not page.errors

    # The lead exports both sets.
    lead_page = _login(browser, live_server, "lead", f"/projects/{project.pk}/dashboard/")
    r = lead_page.request.get(f"{live_server.url}/projects/{project.pk}/export/csv/")
    assert r.ok
    rows = {int(x["item_id"]): x for x in csv.DictReader(io.StringIO(r.text()))}
    for item_id in labelled:
        assert rows[item_id]["label"] == truth[item_id]["type"]
        assert rows[item_id]["label:colour"] == truth[item_id]["colour"]
    data = json.loads(lead_page.request.get(
        f"{live_server.url}/projects/{project.pk}/export/json/").text())
    first = next(i for i in data["items"] if i["id"] == labelled[0])
    assert [s["set"] for s in first["sets"]] == ["Class", "colour"]
    assert first["sets"][1]["tags"] == [truth[labelled[0]]["colour"]]
