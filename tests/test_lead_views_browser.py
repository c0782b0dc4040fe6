"""The lead's views in a real Chromium (issue 17.2, 17.4, 17.8): versions compared on the same
audit items on the dashboard (points split by backbone, intervals, versions table), the map's
out-of-fold disagreement filter and its counter, settings reordered by dragging, the tab bar,
and no favicon 404. Screenshots go to the test's folder (LABELER_SCREENSHOTS=DIR copies them).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from labeler.insights import maps, services
from labeler.training.models import ModelVersion

from .lead_fixtures import BACKBONES, three_versions

pytestmark = pytest.mark.browser

PASSWORD = "pw-for-tests-1"


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("LABELER_SCREENSHOTS")
    if target:
        shutil.copy(path, Path(target) / name)


def _open(browser, base: str) -> tuple:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page, problems


@pytest.fixture
def lead_world(transactional_db, make_user, project_factory):
    lead = make_user("lead", password=PASSWORD)
    project = project_factory("Clothes", classes=["dress", "hat", "shoe"], lead=lead)
    world = three_versions(project, lead)
    maps.compute_map(project, method="pca")
    return {"project": project, "lead": lead, **world}


@pytest.mark.django_db(transaction=True)
def test_dashboard_compares_versions_on_the_same_audit_items(
    live_server, browser, lead_world, tmp_path
):
    project = lead_world["project"]
    page, problems = _open(browser, live_server.url)
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    page.wait_for_selector("#chart-curve canvas", timeout=15000)
    series = page.evaluate(
        "window.labelerCharts[0].getOption().series.map(s => [s.name, s.type, s.data.length])"
    )
    names = [s[0] for s in series if s[1] == "line"]
    for backbone in BACKBONES:  # one audit series and one CV series per backbone
        assert f"Same audit items (n=30) · {backbone}" in names
        assert f"Cross-validated · {backbone}" in names
    points = {s[0]: s[2] for s in series}
    assert points[f"Same audit items (n=30) · {BACKBONES[0]}"] == 2  # v1, v2
    assert points[f"Same audit items (n=30) · {BACKBONES[1]}"] == 1  # v3
    # An interval on every point: audit and CV error bars, one per point.
    assert points[f"audit CI {BACKBONES[0]}"] == 2 and points[f"cv CI {BACKBONES[0]}"] == 2
    assert points[f"audit CI {BACKBONES[1]}"] == 1 and points[f"cv CI {BACKBONES[1]}"] == 1
    rows = page.locator("#versions-table tbody tr")
    assert rows.count() == 3
    comparison = ModelVersion.objects.get(project=project, number=3).metrics["comparison"]
    for entry in comparison["versions"]:
        row = page.locator(f'#versions-table tr[data-version="{entry["version"]}"]')
        assert row.locator("td.backbone").inner_text() == entry["backbone"]
        same = row.locator("td.same").inner_text()
        assert f"{100 * entry['accuracy']:.1f} %" in same and "n=30" in same
    assert "same 30 current audit items" in page.locator("#versions").inner_text()
    _shot(page, tmp_path, "dashboard.png")
    assert not problems, problems


@pytest.mark.django_db(transaction=True)
def test_map_shows_the_out_of_fold_disagreements_and_counts_them(
    live_server, browser, lead_world, tmp_path
):
    project = lead_world["project"]
    expected = services.label_issues(project)["flagged"]
    page, problems = _open(browser, live_server.url)
    page.goto(f"{live_server.url}/projects/{project.pk}/map/")
    page.wait_for_function("() => window.labelerMap && window.labelerMap.n > 0", timeout=20000)
    assert page.locator("#map-status").inner_text().startswith("150 items shown")
    assert f"({expected}, out-of-fold, model v3)" in page.locator("#disagree-note").inner_text()
    page.check("#only-disagree")
    assert page.evaluate("window.labelerMap.shown()") == expected
    assert page.locator("#map-status").inner_text().startswith(f"{expected} of 150 items shown")
    _shot(page, tmp_path, "map-disagree.png")
    assert not problems, problems


@pytest.mark.django_db(transaction=True)
def test_settings_tabs_drag_to_reorder_and_merge(live_server, browser, lead_world, tmp_path):
    project = lead_world["project"]
    page, problems = _open(browser, live_server.url)
    page.goto(f"{live_server.url}/projects/{project.pk}/settings/")
    tabs = page.locator("nav.insights-tabs a")
    assert tabs.all_inner_texts()[:5] == ["Dashboard", "Likely label errors", "Embedding map",
                                          "Items", "Settings"]
    assert page.locator("nav.insights-tabs a.active").inner_text() == "Settings"
    source = page.locator("#merge-source").input_value()
    assert source != page.locator("#merge-target").input_value()
    # Choosing the target's class as the source moves the target elsewhere.
    page.select_option("#merge-source", page.locator("#merge-target").input_value())
    assert page.locator("#merge-source").input_value() != page.locator("#merge-target").input_value()
    # Drag "shoe" (last) above "dress" (first): the page posts the new order.
    names = lambda: [c.name for c in project.classes.all()]  # noqa: E731
    assert names() == ["dress", "hat", "shoe"]
    with page.expect_navigation():
        page.drag_and_drop("#classes tbody tr:nth-child(3) .drag-handle",
                           "#classes tbody tr:nth-child(1) td:nth-child(2)",
                           target_position={"x": 5, "y": 2})
    assert "Order saved." in page.locator(".messages").inner_text()
    assert names() == ["shoe", "dress", "hat"]
    with page.expect_navigation():
        page.click('button[aria-label="Move hat up"]')
    assert names() == ["shoe", "hat", "dress"]
    rows = page.locator("#classes tbody tr td:nth-child(2) input[name=name]")
    assert [rows.nth(i).input_value() for i in range(3)] == ["shoe", "hat", "dress"]
    _shot(page, tmp_path, "settings.png")
    # Every page linked its favicon and none of them got a 404 for /favicon.ico.
    assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith(
        "/static/labeler/favicon.ico")
    assert not [p for p in problems if re.search(r"favicon", p)], problems
    assert not problems, problems
