"""Real headless Chromium (Debian's), driven by Playwright, on the real pages and API."""

from __future__ import annotations

import time

import pytest

from labeler.annotations.models import Annotation, Skip, Source
from labeler.projects.models import Role
from labeler.projects.services import set_member

pytestmark = pytest.mark.browser

PASSWORD = "s3cret-pass"


@pytest.fixture
def labeling(live_server, browser, make_user, project_factory, add_images):
    """A project with 12 images and a function that opens a logged-in page for a new annotator."""
    project = project_factory("Browser", classes=["cat", "dog", "bird"], audit_share=0.0)
    add_images(project, 12)

    def open_page(username: str, path: str = "label"):
        user = make_user(username, password=PASSWORD)
        set_member(project, user, Role.ANNOTATOR)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"{live_server.url}/projects/{project.pk}/{path}/")
        assert "/accounts/login/" in page.url  # login required
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        return page

    return project, open_page


def settle(page, predicate, what: str, timeout: float = 15.0):
    """Poll `predicate` while letting Playwright process events (time.sleep would block it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(200)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; errors: {page.errors}")


def shown_id(page) -> int:
    return int(page.locator("#current-image").get_attribute("data-item-id"))


def press_and_wait(page, key: str) -> None:
    before = page.locator("#current-image").get_attribute("data-item-id")
    page.keyboard.press(key)
    page.wait_for_function(
        "id => document.querySelector('#current-image').dataset.itemId !== id", arg=before
    )


def wait_image(page) -> None:
    try:
        page.locator("#current-image").wait_for(state="visible", timeout=15000)
    except Exception:
        raise AssertionError(f"no image shown; page errors: {page.errors}") from None


@pytest.mark.django_db(transaction=True)
def test_label_three_images_with_keyboard(labeling):
    project, open_page = labeling
    page = open_page("annie")
    wait_image(page)
    classes = {c.hotkey: c for c in project.classes.all()}
    pressed = {}
    for key in ["1", "2", "3"]:
        pressed[shown_id(page)] = classes[key].pk
        press_and_wait(page, key)
    settle(page, lambda: Annotation.objects.count() == 3, "three saved labels")
    assert dict(Annotation.objects.values_list("item_id", "label_id")) == pressed
    assert set(Annotation.objects.values_list("annotator__username", flat=True)) == {"annie"}
    assert page.locator("#session-count").inner_text() == "3"
    from django.conf import settings

    page.screenshot(path=str(settings.DATA_DIR / "label-page.png"))


@pytest.mark.django_db(transaction=True)
def test_undo_edits_and_skip_records(labeling):
    project, open_page = labeling
    page = open_page("ulla")
    wait_image(page)
    cat, dog, _ = project.classes.all()
    first = shown_id(page)
    press_and_wait(page, "1")                      # cat
    page.keyboard.press("z")                       # back to the first image
    page.wait_for_function("id => document.querySelector('#current-image').dataset.itemId == id",
                           arg=str(first))
    press_and_wait(page, "2")                      # relabel as dog
    skipped = shown_id(page)
    press_and_wait(page, "s")                      # skip without reason
    reasoned = shown_id(page)
    page.keyboard.press("Shift+S")
    page.fill("#skip-reason input", "blurry")
    page.keyboard.press("Enter")
    page.wait_for_function("id => document.querySelector('#current-image').dataset.itemId !== id",
                           arg=str(reasoned))
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    settle(page, lambda: Skip.objects.count() == 2, "two skips")
    settle(page, lambda: Annotation.objects.filter(label=dog).exists(), "the relabel")
    annotations = list(Annotation.objects.all())
    assert [(a.item_id, a.label_id) for a in annotations] == [(first, dog.pk)]
    assert dict(Skip.objects.values_list("item_id", "reason")) == {skipped: "", reasoned: "blurry"}
    assert page.locator("#session-count").inner_text() == "1"


@pytest.mark.django_db(transaction=True)
def test_next_image_is_prefetched(labeling):
    """After a key press the next image is already in the browser: no request on the critical path."""
    project, open_page = labeling
    page = open_page("pria")
    requested: dict[str, float] = {}
    page.on("request", lambda r: requested.setdefault(r.url, time.monotonic())
            if "/image" in r.url else None)
    wait_image(page)
    page.wait_for_timeout(1500)  # let the prefetch finish
    for key in ["1", "2", "3"]:
        pressed_at = time.monotonic()
        press_and_wait(page, key)
        url = page.locator("#current-image").evaluate("el => el.src")
        assert url in requested and requested[url] < pressed_at, url
        assert page.locator("#current-image").evaluate("el => el.complete")
        page.wait_for_timeout(300)


@pytest.mark.django_db(transaction=True)
def test_two_annotators_never_see_the_same_item(labeling):
    project, open_page = labeling
    a, b = open_page("anna"), open_page("bert")
    wait_image(a)
    wait_image(b)
    seen_a, seen_b = set(), set()
    for _ in range(4):
        seen_a.add(shown_id(a))
        press_and_wait(a, "1")
        seen_b.add(shown_id(b))
        press_and_wait(b, "2")
    assert not seen_a & seen_b
    settle(a, lambda: Annotation.objects.count() == 8, "eight labels")
    assert Annotation.objects.values("item").distinct().count() == 8


@pytest.mark.django_db(transaction=True)
def test_save_retried_after_dropped_connection_creates_one_annotation(labeling):
    project, open_page = labeling
    page = open_page("dora")
    wait_image(page)
    calls = {"n": 0}

    def drop_first_response(route):
        calls["n"] += 1
        if calls["n"] == 1:
            route.fetch()          # the server receives and stores the label...
            route.abort("connectionreset")  # ...but the browser never sees the answer
        else:
            route.continue_()

    page.route("**/annotations/", drop_first_response)
    item = shown_id(page)
    press_and_wait(page, "1")
    settle(page, lambda: calls["n"] >= 2, "the retried save")
    settle(page, lambda: page.locator("#save-status").inner_text() == "all saved", "saved")
    assert Annotation.objects.filter(item_id=item).count() == 1
    assert Annotation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_grid_confirm_with_rejects(labeling):
    project, open_page = labeling
    cat = project.classes.get(name="cat")
    items = list(project.items.order_by("pk"))
    for rank, item in enumerate(items[:8]):  # as a retrain would: the model's predictions
        item.predicted_class = cat
        item.predicted_confidence = 0.99 - rank * 0.01
        item.save()
    page = open_page("gina", path="grid")
    page.locator(".tile").first.wait_for(timeout=15000)
    assert page.locator(".tile").count() == 8
    tile_ids = [int(t.get_attribute("data-item-id")) for t in page.locator(".tile").all()]
    assert tile_ids == [i.pk for i in items[:8]]  # most confident first
    page.locator(".tile").nth(2).click()           # reject with a click
    page.keyboard.press("ArrowRight")              # cursor 2 -> 3
    page.keyboard.press("x")                       # reject with a key
    page.keyboard.press("Enter")                   # confirm the rest
    settle(page, lambda: Annotation.objects.count() == 6, "six grid labels")
    confirmed = set(Annotation.objects.values_list("item_id", flat=True))
    assert confirmed == {i.pk for i in items[:8]} - {tile_ids[2], tile_ids[3]}
    assert set(Annotation.objects.values_list("source", flat=True)) == {Source.GRID}
    assert set(Annotation.objects.values_list("label_id", flat=True)) == {cat.pk}
