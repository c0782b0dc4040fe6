"""Every page type under the real Content-Security-Policy, in Debian's headless Chromium.

The policy has no 'unsafe-inline' for scripts or styles, so any inline <script>, style=""
attribute or HTML-with-style built in JavaScript (e.g. a chart tooltip) would be refused by the
browser. The test listens to both the `securitypolicyviolation` DOM event and the console's
"Refused to ..." messages on each page, after using it (hover tooltips, press label keys), and
checks that the pages still work.
"""

from __future__ import annotations

import pytest

from labeler.annotations.models import Annotation
from labeler.insights import maps
from tests.test_insights_views import world  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.browser

# Runs before any page script: records violations the page reports about itself.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(
  e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber
  + " sample=" + e.sample));
"""


class Visitor:
    """One browser context; every page it opens is checked for the CSP header and violations."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console: {m.text}")
                     if "Content Security Policy" in m.text or m.text.startswith("Refused to")
                     else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def visit(self, path: str) -> None:
        response = self.page.goto(self.base + path)
        assert response is not None and response.ok, (path, response and response.status)
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, (path, policy)
        assert "unsafe-inline" not in policy, (path, policy)
        self.page.wait_for_load_state("networkidle")

    def check(self, where: str) -> None:
        """Fail on any violation seen since the page was opened (call after using the page)."""
        self.page.wait_for_timeout(150)  # violation events are dispatched asynchronously
        seen = self.page.evaluate("window.__csp || []")
        problems = [f"{where}: {v}" for v in seen] + [f"{where}: {p}" for p in self.problems]
        self.problems.clear()
        assert not problems, problems

    def login(self, username: str, password: str = "pw-for-tests-1") -> None:
        self.visit("/accounts/login/")
        self.check("login page")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("networkidle")


def hover_at(page, selector: str, fx: float, fy: float) -> None:
    """Hover a chart at a fraction of its size (scrolled into view first)."""
    target = page.locator(selector)
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=4)
    page.wait_for_timeout(300)


@pytest.mark.django_db(transaction=True)
def test_app_pages_satisfy_the_policy_and_still_work(
    live_server, browser, world  # noqa: F811 - the imported fixture
):
    project, pid = world["project"], world["project"].pk
    maps.compute_map(project)
    v = Visitor(browser, live_server.url)
    v.login("lead")
    page = v.page

    v.visit("/")
    v.check("project list")

    v.visit(f"/projects/{pid}/")
    # Class colours reach the chips through data-color + CSSOM, not style="".
    colour = page.evaluate(
        "getComputedStyle(document.querySelector('.chip[data-color]')).getPropertyValue('--c')")
    assert colour.strip() == project.classes.order_by("pk").first().color
    page.wait_for_timeout(3300)  # one status poll from the static script
    v.check("project page")

    v.visit(f"/projects/{pid}/settings/")
    v.check("settings")

    # Label page: keys still save labels.
    before = Annotation.objects.filter(annotator=world["lead"]).count()
    v.visit(f"/projects/{pid}/label/")
    image = page.locator("#current-image")
    image.wait_for(state="visible", timeout=15000)
    shown = image.get_attribute("data-item-id")
    page.keyboard.press("1")
    page.wait_for_function(
        "id => document.querySelector('#current-image').dataset.itemId !== id", arg=shown)
    for _ in range(50):
        if Annotation.objects.filter(annotator=world["lead"]).count() > before:
            break
        page.wait_for_timeout(100)
    assert Annotation.objects.filter(annotator=world["lead"], item_id=int(shown)).exists()
    v.check("label page")

    v.visit(f"/projects/{pid}/grid/")
    page.locator(".tile").first.wait_for(timeout=15000)
    v.check("grid")

    # Dashboard: charts draw; their tooltips (HTML built by ECharts and by our formatters) too.
    v.visit(f"/projects/{pid}/dashboard/")
    for chart in ("#chart-curve", "#chart-classes", "#chart-confusion"):
        page.wait_for_selector(f"{chart} canvas", timeout=15000)
    assert page.evaluate("window.labelerCharts.length") == 3
    hover_at(page, "#chart-classes", 0.3, 0.7)
    hover_at(page, "#chart-confusion", 0.55, 0.3)
    assert page.locator("#chart-confusion div").filter(has_text="predicted").count() >= 1
    v.check("dashboard")

    # Map: a point's tooltip with its thumbnail.
    v.visit(f"/projects/{pid}/map/")
    page.wait_for_function("() => window.labelerMap && window.labelerMap.n === 24", timeout=15000)
    target = world["items"][7]
    px = page.evaluate("(itemId) => window.labelerMap.pixelOf(itemId)", target.pk)
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + px[0], box["y"] + px[1])
    page.locator(".map-tip img").wait_for(state="visible", timeout=5000)
    v.check("map")

    v.visit(f"/projects/{pid}/label-errors/?all=1")
    v.check("label errors")
    v.visit(f"/projects/{pid}/items/{target.pk}/")
    colour = page.evaluate(
        "getComputedStyle(document.querySelector('button.relabel')).borderLeftWidth")
    assert colour == "6px"
    v.check("item page")

    # A refused POST (no CSRF token) shows our 403 page, not Django's one with an inline <style>.
    with page.expect_navigation():
        page.evaluate("""() => {
            const f = document.createElement("form");
            f.method = "post";
            f.action = "/accounts/logout/";
            document.body.append(f);
            f.submit();
        }""")
    assert page.locator("#csrf-failure").count() == 1
    v.check("CSRF failure page")

    # The watch itself works: an injected style attribute and inline script are refused and seen.
    page.evaluate("""() => {
        const d = document.createElement("div");
        d.innerHTML = '<b style="color: red">injected</b>';
        document.body.append(d);
        const s = document.createElement("script");
        s.textContent = "window.__ran = 1";
        document.body.append(s);
    }""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran") is None
    seen = page.evaluate("window.__csp")
    assert any(x.startswith("style-src") for x in seen), seen
    assert any(x.startswith("script-src") for x in seen), seen
    v.context.close()


@pytest.mark.django_db(transaction=True)
def test_admin_pages_satisfy_the_policy(
    live_server, browser, make_user, project_factory, add_images
):
    staff = make_user("root", staff=True)
    project = project_factory("Admin view", lead=staff)
    add_images(project, 2)
    v = Visitor(browser, live_server.url)
    v.login("root")
    for path in [
        "/projects/new/",
        "/admin/",
        "/admin/projects/project/",
        f"/admin/projects/project/{project.pk}/change/",
        "/admin/projects/project/add/",
        "/admin/auth/user/",
        f"/admin/auth/user/{staff.pk}/change/",
        "/admin/auth/user/add/",
        f"/admin/auth/user/{staff.pk}/password/",
        f"/admin/auth/user/{staff.pk}/history/",
        f"/admin/projects/project/{project.pk}/delete/",
        "/admin/items/item/",
        "/admin/annotations/annotation/",
        "/admin/training/modelversion/",
        "/admin/password_change/",
    ]:
        v.visit(path)
        v.check(path)
    # The admin's own scripts still run under the policy: "select all" ticks every row.
    v.visit("/admin/auth/user/")
    assert v.page.evaluate("typeof window.django === 'object'")
    v.page.check("#action-toggle")
    assert v.page.locator("input.action-select:checked").count() == 1
    v.check("admin actions")
    v.context.close()
