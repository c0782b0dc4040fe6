"""Audit share per item through the labeling page in a real Chromium (issue 17.1).

An annotator labels by keyboard; the page asks the server for its next items. The page's own
batch sizes are mostly 1 (it refills after each label), so the test also rewrites the `n` of
every next-item request to cycle through 1..5, exercising each batch size through the real page
and API. Every item served is then an audit item with probability `audit_share` = 0.5: the
share among the items served must lie in the 99.99 % Wilson interval around 0.5 for ~200 items
([0.37, 0.63]). The old queue (one coin per request) served 50/37.5/29/23/19 % for n = 1..5,
about 24 % over the cycle, far outside it.
"""

from __future__ import annotations

import re
import time

import pytest

from labeler.annotations.models import Annotation
from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from worker.ml.metrics import wilson_interval

pytestmark = pytest.mark.browser

PASSWORD = "s3cret-pass"
LABELS = 150


@pytest.mark.django_db(transaction=True)
def test_audit_share_of_items_served_through_the_page(
    live_server, browser, make_user, project_factory, add_images
):
    project = project_factory("Audit page", classes=["cat", "dog"], audit_share=0.5)
    add_images(project, LABELS + 60)
    user = make_user("annie", password=PASSWORD)
    set_member(project, user, Role.ANNOTATOR)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sizes: list[int] = []

    def cycle_n(route):
        n = len(sizes) % 5 + 1
        sizes.append(n)
        route.continue_(url=re.sub(r"([?&])n=\d+", rf"\g<1>n={n}", route.request.url))

    page.route(re.compile(r".*/api/projects/\d+/next/.*"), cycle_n)
    page.goto(f"{live_server.url}/accounts/login/?next=/projects/{project.pk}/label/")
    page.fill("#id_username", "annie")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.locator("#current-image").wait_for(state="visible", timeout=20000)
    for j in range(LABELS):
        before = page.locator("#current-image").get_attribute("data-item-id")
        page.keyboard.press("1" if j % 2 else "2")
        page.wait_for_function(
            "id => document.querySelector('#current-image').dataset.itemId !== id",
            arg=before, timeout=15000,
        )
    deadline = time.monotonic() + 20
    while Annotation.objects.filter(annotator=user).count() < LABELS and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert not errors, errors
    assert set(sizes) == {1, 2, 3, 4, 5}, sizes

    labeled = list(Annotation.objects.filter(annotator=user).values_list("is_audit", flat=True))
    held = list(Item.objects.filter(project=project, leased_by=user, annotation_count=0)
                .values_list("lease_is_audit", flat=True))
    served = labeled + held
    assert len(labeled) == LABELS and len(served) >= LABELS
    audits = sum(served)
    low, high = wilson_interval(audits, len(served), confidence=0.9999)
    assert low <= 0.5 <= high, f"{audits} audit items of {len(served)} served"
    # The flag the lease carried is what the saved label records.
    assert 0 < sum(labeled) < LABELS
