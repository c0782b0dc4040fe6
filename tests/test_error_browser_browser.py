"""The error browser in a real headless Chromium: a confusion-matrix cell opens its images in
the item table, a filter narrows it, an item shows its neighbours and its place on the map, and
a relabel from there reaches the database.

Set LABELER_SCREENSHOTS=DIR to keep the screenshots (docs/error-browser-*.png come from here).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from labeler.annotations.models import Annotation
from labeler.insights import maps
from labeler.items.models import Item

from .test_insights_browser import _login, _watch
from .test_insights_views import world  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.browser


def _shot(page, tmp_path: Path, name: str, **kw) -> None:
    folder = Path(os.environ.get("LABELER_SCREENSHOTS") or tmp_path)
    page.screenshot(path=str(folder / f"error-browser-{name}.png"), **kw)


@pytest.mark.django_db(transaction=True)
def test_confusion_cell_to_table_to_item_to_relabel(
    live_server, browser, world, tmp_path  # noqa: F811 - the imported fixture
):
    project = world["project"]
    maps.compute_map(project)
    dog, bird = world["classes"]["dog"], world["classes"]["bird"]
    base = live_server.url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = _watch(page)
    _login(page, base, "lead")

    # Dashboard: click the (given dog, predicted dog) cell of the confusion matrix.
    page.goto(f"{base}/projects/{project.pk}/dashboard/")
    page.wait_for_selector("#chart-confusion canvas", timeout=15000)
    px = page.evaluate("""() => {
        const chart = window.labelerCharts.find((c) => c.getDom().id === "chart-confusion");
        return chart.convertToPixel({ xAxisIndex: 0, yAxisIndex: 0 }, ["dog", "dog"]);
    }""")
    page.locator("#chart-confusion").scroll_into_view_if_needed()
    box = page.locator("#chart-confusion").bounding_box()
    with page.expect_navigation():
        page.mouse.click(box["x"] + px[0], box["y"] + px[1])
    query = parse_qs(urlparse(page.url).query)
    assert urlparse(page.url).path == f"/projects/{project.pk}/items/"
    assert query == {"label": [str(dog.pk)], "oof": [str(dog.pk)]}
    rows = page.locator("#item-table tbody tr")
    expected = Item.objects.filter(project=project, current_label=dog, oof_predicted=dog).count()
    assert expected > 0 and rows.count() == expected
    assert set(page.locator("td.cell-label").all_inner_texts()) == {"dog"}
    # The form shows the cell's filters, ready to refine.
    assert page.locator("#id_label").input_value() == str(dog.pk)
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.complete"
                           " && i.naturalWidth > 0)")
    _shot(page, tmp_path, "table", full_page=True)

    # A filter: the least confident first, confidence at most the median of the cell.
    confs = sorted(Item.objects.filter(project=project, current_label=dog, oof_predicted=dog)
                   .values_list("predicted_confidence", flat=True))
    cap = confs[len(confs) // 2]
    page.select_option("#id_sort", "confidence")
    page.fill("#id_conf_max", str(cap))
    with page.expect_navigation():
        page.click("#item-filters button[type=submit]")
    shown = [int(t.strip().lstrip("#")) for t in page.locator("a.item-link").all_inner_texts()]
    want = list(Item.objects.filter(project=project, current_label=dog, oof_predicted=dog,
                                    predicted_confidence__lte=cap)
                .order_by("predicted_confidence", "pk").values_list("pk", flat=True))
    assert shown == want and 0 < len(shown) < expected

    # Bad input from a hand-edited link: a 400 page that says why.
    response = page.goto(f"{base}/projects/{project.pk}/items/?conf_min=7")
    assert response.status == 400
    assert "less than or equal to 1" in page.locator("#item-filters").inner_text()
    errors[:] = [e for e in errors if not e.startswith("400 ")]
    page.go_back()

    # Open the first item: its neighbours, then relabel it as a lead.
    target = shown[0]
    with page.expect_navigation():
        page.click(f"tr[data-item='{target}'] a.item-link")
    figures = page.locator("#neighbours figure")
    assert figures.count() == 8
    page.wait_for_function("() => [...document.querySelectorAll('#neighbours img')].every(i =>"
                           " i.complete && i.naturalWidth > 0)")
    _shot(page, tmp_path, "item", full_page=True)
    page.click(f"button.relabel[data-label='{bird.pk}']")
    page.wait_for_function("() => document.querySelector('.issue-status').textContent.startsWith('Saved')")
    assert Annotation.objects.get(item_id=target, annotator=world["lead"]).label == bird
    assert Item.objects.get(pk=target).current_label == bird

    # "Show on the map": the map opens with that item ringed.
    with page.expect_navigation():
        page.click("#map-link")
    page.wait_for_function("() => window.labelerMap && window.labelerMap.highlighted === true",
                           timeout=15000)
    _shot(page, tmp_path, "map")

    # Back in the table the item has left the (dog, dog) cell; relabel another from a row.
    page.goto(f"{base}/projects/{project.pk}/items/?label={dog.pk}&oof={dog.pk}")
    assert page.locator(f"tr[data-item='{target}']").count() == 0
    other = int(page.locator("#item-table tbody tr").first.get_attribute("data-item"))
    page.select_option(f"tr[data-item='{other}'] select.relabel-other", str(bird.pk))
    # A locator assertion, not a string predicate: the page's CSP forbids eval.
    expect(page.locator(f"tr[data-item='{other}'] .issue-status")).to_have_text(
        re.compile(r"^Saved"))
    assert Item.objects.get(pk=other).current_label == bird
    assert errors == [], errors
