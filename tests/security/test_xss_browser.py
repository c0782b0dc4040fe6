"""Stored XSS, tried in Debian's headless Chromium: a lead uploads a JPEG with a script appended
as evil.html / evil.svg / evil.xhtml and adds a class whose name is markup; the project already
has classes named like scripts, a model (confusion matrix, predictions, label errors) and an
embedding map. Every page an admin, a lead or an annotator opens is visited, the charts'
tooltips are hovered, and no script of the attacker's may run: ``window.__xss`` stays unset, no
dialog opens, and the markup's ``<img src=x>`` is never even requested. That last check keeps the
test sensitive under the Content-Security-Policy too, which would stop the handlers but not the
request that unescaped markup makes."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from labeler.annotations.services import save_annotation
from labeler.insights import maps
from labeler.items.models import Item

from .hostile import HTML_PAYLOAD, XSS_CLASSES, evil_jpeg, hostile  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
PASSWORD = "pw-for-tests-1"
UI_CLASS = '"><img src=x onerror="window.__xss=1;alert(1)">'
UPLOADS = ["upload.html", "upload.svg", "upload.xhtml"]


class Attack:
    """What the attacker's markup would leave behind if it ran or were parsed as HTML."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def watch(self, page) -> None:
        def on_dialog(dialog):
            self.hits.append(f"dialog {dialog.message!r} on {page.url}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", lambda r: self.hits.append(f"markup fetched {r.url}")
                if r.url.rstrip("/").endswith("/x") else None)

    def check(self, page, where: str) -> None:
        if page.evaluate("typeof window.__xss !== 'undefined'"):
            self.hits.append(f"window.__xss set on {where}")
        assert not self.hits, self.hits


def _login(browser, base: str, username: str, attack: Attack):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    attack.watch(page)
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def _visit(page, attack: Attack, url: str, ready: str | None = None) -> None:
    response = page.goto(url)
    assert response.status == 200, (url, response.status)
    if ready:
        page.wait_for_selector(ready, state="attached", timeout=15000)
    attack.check(page, url)


def _hover_chart(page, attack: Attack, dom_id: str, points_js: str) -> list[str]:
    """Move the real mouse over every point `points_js` (chart -> [[x, y] pixels]) gives; returns
    the text of the tooltips shown."""
    page.locator(f"#{dom_id}").scroll_into_view_if_needed()
    box = page.locator(f"#{dom_id}").bounding_box()
    points = page.evaluate(
        f"() => {{ const chart = echarts.getInstanceByDom(document.getElementById('{dom_id}'));"
        f" return ({points_js})(chart); }}"
    )
    assert points, dom_id
    texts = []
    for x, y in points:
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(40)
        texts.append(page.evaluate(f"() => document.getElementById('{dom_id}').textContent"))
    attack.check(page, f"{dom_id} tooltips")
    return texts


@pytest.mark.django_db(transaction=True)
def test_no_attacker_script_runs_on_any_page(live_server, browser, hostile, redis_url):  # noqa: F811
    from labeler.training.stores import store_for

    project, base, attack = hostile["project"], live_server.url, Attack()
    pid = project.pk
    lead_page = _login(browser, base, "lead", attack)

    # The lead uploads real JPEGs with a script appended, named as markup, through the page.
    _visit(lead_page, attack, f"{base}/projects/{pid}/")
    lead_page.set_input_files("#upload-form input[type=file]", files=[
        {"name": name, "mimeType": "text/html", "buffer": evil_jpeg((i, 200, 100))}
        for i, name in enumerate(UPLOADS)
    ])
    lead_page.click("#upload-form button")
    lead_page.wait_for_load_state()
    assert "3 imported" in lead_page.content()
    attack.check(lead_page, "upload")
    uploaded = list(Item.objects.filter(project=project, original_name__in=UPLOADS))
    assert len(uploaded) == 3 and all(i.image.name.endswith(".jpg") for i in uploaded)

    # ... and adds a class whose name breaks out of an attribute, through the settings page.
    _visit(lead_page, attack, f"{base}/projects/{pid}/settings/")
    add = lead_page.locator("form:has(input[value=add_class])")
    add.locator("input[name=name]").fill(UI_CLASS)
    add.locator("button").click()
    lead_page.wait_for_load_state()
    assert "Class added." in lead_page.content()
    attack.check(lead_page, "settings after adding a class")
    new_class = project.classes.get(name=UI_CLASS)

    # The uploads get embeddings and one a label of the new class, so the map shows them.
    store_for(pid, project.backbone).append(
        np.array([i.pk for i in uploaded]),
        hostile["X"][: len(uploaded)] + np.float32(0.1),
    )
    save_annotation(uploaded[0], new_class, hostile["lead"], trigger_retrain=False)
    assert maps.compute_map(project, force=True) is not None

    # The image URL itself: an image type, shown as an image, nothing run.
    for item in uploaded:
        url = f"{base}{reverse('items:image', args=[item.pk])}"
        response = lead_page.goto(url)
        assert response.status == 200 and response.headers["content-type"] == "image/jpeg"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("inline;")
        assert response.body().endswith(HTML_PAYLOAD)  # the bytes are kept, the type is not theirs
        attack.check(lead_page, url)

    # Dashboard: hover every cell of the confusion matrix and every bar of the distribution.
    _visit(lead_page, attack, f"{base}/projects/{pid}/dashboard/", "#chart-confusion canvas")
    cells = _hover_chart(lead_page, attack, "chart-confusion", """chart => {
        const k = chart.getOption().xAxis[0].data.length, out = [];
        for (let i = 0; i < k; i++) for (let j = 0; j < k; j++)
            out.push(chart.convertToPixel({xAxisIndex: 0, yAxisIndex: 0}, [j, i]));
        return out; }""")
    assert any(XSS_CLASSES[1] in t for t in cells), cells[:3]  # names shown as text
    bars = _hover_chart(lead_page, attack, "chart-classes", """chart => {
        const k = chart.getOption().xAxis[0].data.length, out = [], h = chart.getHeight();
        for (let i = 0; i < k; i++)
            out.push([chart.convertToPixel({xAxisIndex: 0}, i), h / 2]);
        return out; }""")
    assert any(UI_CLASS in t for t in bars), bars[:3]
    _hover_chart(lead_page, attack, "chart-curve", """chart => {
        const lines = chart.getOption().series.filter(s => s.type === "line");
        return lines.flatMap(s => s.data.map(
            p => chart.convertToPixel({xAxisIndex: 0, yAxisIndex: 0}, [p[0], p[1]]))); }""")

    # Map: hover a point of every class (and the uploads), in both colourings.
    _visit(lead_page, attack, f"{base}/projects/{pid}/map/")
    lead_page.wait_for_function("() => window.labelerMap && window.labelerMap.n > 0", timeout=15000)
    box = lead_page.locator("#map").bounding_box()
    shown = []
    for colouring in ("label", "pred"):
        lead_page.check(f"input[name=color][value={colouring}]")
        for item in uploaded + hostile["items"][: len(hostile["classes"])]:
            px = lead_page.evaluate("id => window.labelerMap.pixelOf(id)", item.pk)
            lead_page.mouse.move(box["x"] + px[0], box["y"] + px[1])
            lead_page.locator(".map-tip").wait_for(state="visible", timeout=5000)
            shown.append(lead_page.locator(".map-tip").inner_text())
            lead_page.mouse.move(box["x"] + 2, box["y"] + 2)
    attack.check(lead_page, "map tooltips")
    assert any(UI_CLASS in t for t in shown) and any(XSS_CLASSES[0] in t for t in shown)

    # The hostile label set's own dashboard (per-tag table, distribution chart) and map.
    tag_set = hostile["tag_set"].pk
    _visit(lead_page, attack, f"{base}/projects/{pid}/dashboard/?set={tag_set}", "#class-table")
    _hover_chart(lead_page, attack, "chart-classes", """chart => {
        const k = chart.getOption().xAxis[0].data.length, out = [], h = chart.getHeight();
        for (let i = 0; i < k; i++)
            out.push([chart.convertToPixel({xAxisIndex: 0}, i), h / 2]);
        return out; }""")
    _visit(lead_page, attack, f"{base}/projects/{pid}/map/?set={tag_set}")
    lead_page.wait_for_function("() => window.labelerMap && window.labelerMap.n > 0", timeout=15000)
    attack.check(lead_page, "the label set's map")

    # Label errors, an item page, the settings page, the lead's labeling and grid pages.
    _visit(lead_page, attack, f"{base}/projects/{pid}/label-errors/?all=1")
    _visit(lead_page, attack, f"{base}/projects/{pid}/items/{uploaded[0].pk}/")
    _visit(lead_page, attack, f"{base}/projects/{pid}/settings/")
    for page in (lead_page, _login(browser, base, "ann", attack)):
        _visit(page, attack, f"{base}/", None)
        _visit(page, attack, f"{base}/projects/{pid}/")
        _visit(page, attack, f"{base}/projects/{pid}/label/", ".class-button")
        page.locator("#current-image").wait_for(state="visible", timeout=15000)
        page.keyboard.press("?")
        page.keyboard.press("Escape")
        attack.check(page, "label page")
        _visit(page, attack, f"{base}/projects/{pid}/grid/", "#grid-class option")
        for _ in range(len(hostile["classes"]) + 1):
            page.keyboard.press("]")
            page.wait_for_timeout(60)
        attack.check(page, "grid pages")

    # The admin's change lists and the project's change page (inlines hold the class names).
    admin_page = _login(browser, base, "root", attack)
    for path in ["projects/project/", f"projects/project/{pid}/change/", "projects/labelclass/",
                 "projects/membership/", "items/item/", f"items/item/{uploaded[0].pk}/change/",
                 "annotations/annotation/", "training/modelversion/"]:
        _visit(admin_page, attack, f"{base}/admin/{path}")
    assert not attack.hits
