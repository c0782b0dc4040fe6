"""The lead's pages in a real headless Chromium (Debian's), driven by Playwright: charts draw with
the app's own ECharts (no CDN), the map shows a thumbnail on hover and opens the item on click,
and a label error is fixed with one click."""

from __future__ import annotations

import re

import pytest

from labeler.annotations.models import Annotation
from labeler.insights import maps

from .test_insights_views import world  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.browser


def _login(page, base, username, password="pw-for-tests-1"):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def _watch(page) -> list[str]:
    errors: list[str] = []
    # Failed loads are reported by the response hook (with their URL), so that the browser's
    # own favicon probe can be told apart from a real error.
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    local = re.compile(r"https?://(localhost|127\.0\.0\.1)[:/]")
    page.on("request", lambda r: errors.append(f"external {r.url}")
            if r.url.startswith("http") and not local.match(r.url) else None)
    return errors


@pytest.mark.django_db(transaction=True)
def test_dashboard_map_and_label_errors_in_chromium(
    live_server, browser, world, tmp_path  # noqa: F811 - the imported fixture
):
    project = world["project"]
    maps.compute_map(project)
    base = live_server.url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = _watch(page)
    _login(page, base, "lead")

    # Dashboard: every chart is an ECharts canvas.
    page.goto(f"{base}/projects/{project.pk}/")
    page.click("#open-dashboard")
    page.wait_for_selector("#chart-curve canvas", timeout=15000)
    page.wait_for_selector("#chart-classes canvas")
    page.wait_for_selector("#chart-confusion canvas")
    assert page.evaluate("window.labelerCharts.length") == 3
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # Map: hover a point -> a thumbnail; click it -> the item page in a new tab.
    page.goto(f"{base}/projects/{project.pk}/map/")
    page.wait_for_function("() => window.labelerMap && window.labelerMap.n === 24", timeout=15000)
    target = world["items"][7]
    px = page.evaluate("(itemId) => window.labelerMap.pixelOf(itemId)", target.pk)
    assert px is not None
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + px[0], box["y"] + px[1])
    tip = page.locator(".map-tip img")
    tip.wait_for(state="visible", timeout=5000)
    src = tip.get_attribute("src")
    assert src.endswith(f"/items/{target.pk}/thumb") or f"/items/{target.pk}/thumb" in src
    page.wait_for_function("() => document.querySelector('.map-tip img').naturalWidth > 0")
    page.screenshot(path=str(tmp_path / "map.png"))
    with page.context.expect_page() as opened:
        page.mouse.click(box["x"] + px[0], box["y"] + px[1])
    item_page = opened.value
    item_page.wait_for_load_state()
    assert item_page.url.endswith(f"/projects/{project.pk}/items/{target.pk}/")
    item_page.close()

    # Label errors: the first one fixed with one click.
    page.goto(f"{base}/projects/{project.pk}/label-errors/?all=1")
    cards = page.locator("article.issue")
    if cards.count():
        card = cards.first
        item_id = int(card.get_attribute("data-item"))
        before = Annotation.objects.filter(item_id=item_id, annotator=world["lead"]).count()
        card.locator("button.relabel").first.click()
        page.wait_for_function(
            """id => {
                const text = document.querySelector('#issue-' + id + ' .issue-status').textContent;
                return text.startsWith('Saved') || text.includes('majority');
            }""",
            arg=item_id,
        )
        assert Annotation.objects.filter(item_id=item_id, annotator=world["lead"]).count() >= before
    assert not errors, errors
