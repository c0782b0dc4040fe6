"""The backbone check card on the settings page and dashboard, its buttons, and who may use them."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from labeler.projects.models import Project, Role
from labeler.projects.services import set_member
from labeler.training.checks import check_due, request_check_if_due
from labeler.training.models import BackboneCheck, ModelVersion, Status
from worker.ml.transferability import assess_backbones

pytestmark = pytest.mark.django_db

LITE0, LITE1 = "efficientnet-lite0", "efficientnet-lite1"


def _result(separable: bool, seed: int = 0) -> dict:
    """A real assess_backbones result on synthetic features: lite1 clearly better, or noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 12)
    centres = rng.normal(size=(3, 32))
    if separable:
        feats = {LITE0: centres[y] * 0.3 + rng.normal(size=(36, 32)),
                 LITE1: centres[y] * 2.0 + rng.normal(size=(36, 32))}
    else:
        feats = {LITE0: rng.normal(size=(36, 32)), LITE1: rng.normal(size=(36, 32))}
    return assess_backbones(feats, y, current=LITE0)


@pytest.fixture
def people(make_user, project_factory):
    project = project_factory("Check", classes=["cat", "dog", "bird"], backbone=LITE0)
    lead, annotator, stranger = make_user("lead"), make_user("ann"), make_user("stranger")
    set_member(project, lead, Role.LEAD)
    set_member(project, annotator, Role.ANNOTATOR)
    return project, lead, annotator, stranger


def _done_check(project, result: dict) -> BackboneCheck:
    return BackboneCheck.objects.create(project=project, backbone=LITE0, status="done",
                                        result=result, labels_used=result["n_labels"])


def _pages(project):
    return [reverse("projects:settings", args=[project.pk]),
            reverse("insights:dashboard", args=[project.pk])]


def test_lead_sees_table_recommendation_and_switch_on_both_pages(client, people, redis_url):
    project, lead, _, _ = people
    result = _result(separable=True)
    assert result["recommended"] == LITE1
    _done_check(project, result)
    client.force_login(lead)
    gain = next(r["gain"] for r in result["rows"] if r["backbone"] == LITE1)
    for url in _pages(project):
        html = client.get(url).content.decode()
        assert 'id="check-table"' in html and LITE1 in html
        assert f"{LITE1}: {100 * gain:+.1f} points on your labels" in html
        assert 'id="check-switch"' in html and 'id="transfer-warning"' not in html
        assert 'style="' not in html.split('id="backbone-check"')[1].split("</section>")[0]
    # The Switch button posts to the existing background switch.
    response = client.post(reverse("projects:settings", args=[project.pk]),
                           {"action": "backbone", "backbone": LITE1, "weights_path": ""},
                           follow=True)
    assert response.status_code == 200
    assert Project.objects.get(pk=project.pk).pending_backbone == LITE1
    html = client.get(_pages(project)[0]).content.decode()
    assert 'id="check-switch"' not in html  # no advice while the switch runs


def test_warning_when_no_backbone_separates_the_classes(client, people):
    project, lead, _, _ = people
    result = _result(separable=False)
    assert not result["transfer_fits"] and result["recommended"] is None
    _done_check(project, result)
    client.force_login(lead)
    for url in _pages(project):
        html = client.get(url).content.decode()
        assert 'id="transfer-warning"' in html and "wrong tool" in html
        assert 'id="check-switch"' not in html


def test_stale_advice_after_a_switch_and_escaped_class_names(client, people):
    project, lead, _, _ = people
    result = _result(separable=True)
    result["dropped_classes"] = ["<img src=x onerror=alert(1)>"]
    _done_check(project, result)
    Project.objects.filter(pk=project.pk).update(backbone=LITE1)
    client.force_login(lead)
    html = client.get(_pages(project)[0]).content.decode()
    assert 'id="check-stale"' in html and 'id="check-switch"' not in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_roles_on_the_card_run_button_and_status(client, people, redis_url):
    project, lead, annotator, stranger = people
    run = reverse("training:run_check", args=[project.pk])
    status = reverse("training:check_status", args=[project.pk])
    for user, code in ((annotator, 403), (stranger, 404)):
        client.force_login(user)
        assert client.post(run, {"next": "settings"}).status_code == code
        assert client.get(status).status_code == code
        for url in _pages(project):
            assert client.get(url).status_code == code
    assert not BackboneCheck.objects.exists()
    client.force_login(lead)
    assert client.get(status).json() == {"status": "none"}
    assert client.get(run).status_code == 405
    response = client.post(run, {"next": "dashboard"})
    assert response.status_code == 302 and response.url == _pages(project)[1]
    check = BackboneCheck.objects.get()
    assert check.status == "queued"
    assert client.get(status).json()["status"] == "queued"
    html = client.get(_pages(project)[0]).content.decode()
    assert 'id="check-progress"' in html and 'id="run-check" disabled' in html
    # One at a time; an unknown "next" goes to the settings page, never elsewhere.
    response = client.post(run, {"next": "https://evil.example/"}, follow=True)
    assert response.redirect_chain[-1][0] == _pages(project)[0]
    assert "already running" in str(list(response.context["messages"])[0])
    assert BackboneCheck.objects.count() == 1


def test_due_at_five_labels_per_class_then_when_labels_double(people, redis_url, settings):
    project, *_ = people
    settings.LABELER_BACKBONE_CHECK_AUTO = True

    def version(number: int, counts: dict) -> None:
        ModelVersion.objects.create(project=project, number=number, status=Status.READY,
                                    backbone=LITE0, strategy="auto",
                                    metrics={"class_counts": counts})

    assert not check_due(project)  # no model yet
    version(1, {"1": 5, "2": 5, "3": 4})
    assert not check_due(project)  # a labeled class below 5
    version(2, {"1": 5, "2": 5, "3": 5})
    check = request_check_if_due(project)
    assert check is not None and check.status == "queued"
    assert request_check_if_due(project) is None  # one at a time
    BackboneCheck.objects.filter(pk=check.pk).update(status="done", labels_used=15)
    settings.LABELER_BACKBONE_CHECK_AUTO = False
    version(4, {"1": 10, "2": 10, "3": 10})
    assert check_due(project) and request_check_if_due(project) is None  # switched off
    ModelVersion.objects.filter(number=4).delete()
    settings.LABELER_BACKBONE_CHECK_AUTO = True
    version(3, {"1": 9, "2": 10, "3": 10})
    assert not check_due(project)  # 29 < 2 x 15
    version(4, {"1": 10, "2": 10, "3": 10})
    assert check_due(project)


def test_a_check_with_too_few_labels_fails_with_a_plain_message(client, people):
    """The real task, run in-process: no labels yet, so nothing to compare on."""
    from labeler.training.checks import check_now

    project, lead, _, _ = people
    check = BackboneCheck.objects.create(project=project, backbone=LITE0)
    assert check_now(check.pk) is None
    check.refresh_from_db()
    assert check.status == "failed" and "at least 2 classes with 5" in check.error
    client.force_login(lead)
    html = client.get(_pages(project)[0]).content.decode()
    assert 'id="check-error"' in html and "label more items first" in html
    assert 'id="check-none"' in html and 'id="run-check" disabled' not in html
