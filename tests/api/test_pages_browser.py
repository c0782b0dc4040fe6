"""The tokens page, the webhooks page and the interactive API docs in headless Chromium, under
the real Content-Security-Policy (no violation, and each page works)."""

from __future__ import annotations

import re

import pytest

from labeler.api.models import ApiToken
from labeler.webhooks.models import Webhook
from tests.security.test_csp_browser import Visitor

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_tokens_webhooks_and_docs_pages(live_server, browser, make_user, project_factory,
                                        labeler_dirs):
    lead = make_user("lead", staff=True)
    project = project_factory("Hooks", lead=lead)
    v = Visitor(browser, live_server.url)
    v.login("lead")
    page = v.page

    v.visit("/account/tokens/")
    page.fill("input[name=name]", "notebook")
    page.fill("input[name=days]", "7")
    with page.expect_navigation():
        page.click("button:has-text('Create token')")
    token = page.locator("#token-text").inner_text()
    assert re.fullmatch(r"lbl_[0-9a-f]{12}_[\w-]{43}", token)
    assert ApiToken.objects.get().name == "notebook"
    v.check("tokens page")
    with page.expect_navigation():
        page.click("button:has-text('Revoke')")
    assert ApiToken.objects.get().revoked_at is not None
    assert "revoked" in page.locator("#tokens").inner_text()

    v.visit(f"/projects/{project.pk}/webhooks/")
    page.fill("input[name=url]", "https://93.184.216.34/hook")
    with page.expect_navigation():
        page.click("button:has-text('Add')")
    assert Webhook.objects.get().secret in page.locator("#webhook-secret").inner_text()
    v.check("webhooks page")
    page.fill("input[name=url]", "http://127.0.0.1:8000/x")
    with page.expect_navigation():
        page.click("button:has-text('Add')")
    assert "private" in page.locator("p.error").inner_text()
    v.check("webhooks page, refused URL")

    v.visit("/api/v1/docs/")
    page.wait_for_function("() => document.querySelectorAll('.opblock').length > 20")
    page.screenshot(path=str(labeler_dirs / "api-docs.png"))
    v.check("API docs")
    for path in ("/admin/api/apitoken/", "/admin/api/apitoken/add/",
                 "/admin/webhooks/webhook/", f"/admin/webhooks/webhook/{Webhook.objects.get().pk}/change/",
                 "/admin/webhooks/delivery/"):
        v.visit(path)
        v.check(path)
    v.context.close()
