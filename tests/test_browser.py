"""A real headless Chromium (Debian's), driven by Playwright, labels images with the keyboard."""

from __future__ import annotations

import os
import shutil

import pytest

from labeler.annotations.models import Annotation
from labeler.projects.models import Role
from labeler.projects.services import set_member

from .conftest import CHROMIUM, wait_for

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI must install Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.mark.django_db(transaction=True)
def test_login_and_label_three_images_with_keyboard(
    live_server, browser, make_user, project_factory, add_images
):
    project = project_factory("Browser", classes=["cat", "dog", "bird"], audit_share=0.0)
    add_images(project, 6)
    user = make_user("annie", password="s3cret-pass")
    set_member(project, user, Role.ANNOTATOR)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    assert "/accounts/login/" in page.url  # login required
    page.fill("#id_username", "annie")
    page.fill("#id_password", "s3cret-pass")
    page.click("button[type=submit]")
    image = page.locator("#current-image")
    try:
        image.wait_for(state="visible", timeout=15000)
    except Exception:
        raise AssertionError(f"no image shown; browser errors: {errors}") from None
    classes = {c.hotkey: c for c in project.classes.all()}
    pressed = {}
    for key in ["1", "2", "3"]:
        shown = image.get_attribute("data-item-id")
        pressed[int(shown)] = classes[key].pk
        page.keyboard.press(key)
        page.wait_for_function(
            "id => document.querySelector('#current-image').dataset.itemId !== id", arg=shown
        )
    wait_for(lambda: Annotation.objects.count() == 3, 15, 0.2, "three saved labels")
    saved = dict(Annotation.objects.values_list("item_id", "label_id"))
    assert saved == pressed
    assert set(Annotation.objects.values_list("annotator__username", flat=True)) == {"annie"}
    assert page.locator("#session-count").inner_text() == "3"
    page.screenshot(path=str(live_server_screenshot_path()))


def live_server_screenshot_path():
    from django.conf import settings

    return settings.DATA_DIR / "label-page.png"
