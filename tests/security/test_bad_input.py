"""Bad input is a 400 with a message, never a 500 (issue #11, item 7), and a 500 that does
happen is logged with its traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import path, reverse

from labeler.annotations.queue import next_items
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.request_input import nesting_depth

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator(client, make_user, project_factory, add_images):
    project = project_factory("Bad input")
    add_images(project, 3)
    user = make_user("ann")
    set_member(project, user, Role.ANNOTATOR)
    client.force_login(user)
    return client, project, user


def post_json(client, url: str, body) -> tuple[int, dict]:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = client.post(url, raw, content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.parametrize("field", ["item", "label"])
@pytest.mark.parametrize("value", [10**30, 2**63, -(2**63) - 1, 1e30, True, "x", [1], {}])
def test_label_api_refuses_ids_it_cannot_store(annotator, field, value):
    client, project, user = annotator
    item = next_items(project, user, 1)[0]
    body = {"item": item.pk, "label": project.classes.first().pk, field: value}
    status, payload = post_json(client, reverse("annotations:annotate", args=[project.pk]), body)
    assert status == 400, payload
    assert payload["error"].startswith(field) and field in payload["fields"]


@pytest.mark.parametrize("seconds", [[1], {}, "fast", 10**400, True])
def test_label_api_refuses_seconds_that_are_not_a_number(annotator, seconds):
    client, project, user = annotator
    item = next_items(project, user, 1)[0]
    body = {"item": item.pk, "label": project.classes.first().pk, "seconds": seconds}
    status, payload = post_json(client, reverse("annotations:annotate", args=[project.pk]), body)
    assert status == 400 and "seconds" in payload["fields"], payload


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"item":' * 100_000 + "1" + "}" * 100_000,
    '{"item": 1, "label": NaN}',
    '{"item": 1, "label": 1, "client_id": "\\ud800"}',
    b'{"item": "\xff"}',
    '{"item": 1' + "9" * 5000 + "}",
    "[1, 2]",
    '"' + '\\"' * 120_000,  # an unterminated string of escaped quotes: scanned in linear time
    "{" * 300_000,  # over the size limit
])
def test_hostile_bodies_are_400(annotator, body):
    client, project, _ = annotator
    for name in ("annotations:annotate", "annotations:skip", "annotations:grid_confirm"):
        status, payload = post_json(client, reverse(name, args=[project.pk]), body)
        assert status == 400 and payload["error"], (name, payload)


@pytest.mark.parametrize("text, depth", [
    ("{}", 1), ('{"a": [1, {"b": 2}]}', 3), ('["[[[", "]"]', 1), ('["\\"[[", 1]', 1),
    ('"[[[', 0), ("", 0),
])
def test_nesting_depth(text, depth):
    assert nesting_depth(text) == depth


def test_brackets_inside_strings_do_not_count_as_nesting(annotator):
    client, project, user = annotator
    item = next_items(project, user, 1)[0]
    body = {"item": item.pk, "reason": "[" * 1000}
    status, _ = post_json(client, reverse("annotations:skip", args=[project.pk]), body)
    assert status == 200


def test_grid_confirm_refuses_huge_ids(annotator):
    client, project, _ = annotator
    body = {"label": project.classes.first().pk, "confirmed": [10**30]}
    status, payload = post_json(client, reverse("annotations:grid_confirm", args=[project.pk]), body)
    assert status == 400 and "confirmed" in payload["fields"]


def test_next_refuses_huge_excluded_ids(annotator):
    client, project, _ = annotator
    response = client.get(reverse("annotations:next", args=[project.pk]), {"exclude": str(10**30)})
    assert response.status_code == 400 and "exclude" in response.json()["fields"]


def test_huge_ids_in_the_path_are_404(annotator):
    client, project, _ = annotator
    assert client.get(f"/projects/{10**30}/label/").status_code == 404
    assert client.get(f"/items/{10**30}/image").status_code == 404


@pytest.fixture
def lead(client, make_user, project_factory):
    project = project_factory("Settings input", classes=["cat", "dog"])
    user = make_user("lead")
    set_member(project, user, Role.LEAD)
    client.force_login(user)
    return client, project


def settings_post(client, project, **data):
    response = client.post(reverse("projects:settings", args=[project.pk]), data)
    return response.status_code, [str(m) for m in response.context["messages"]]


def test_settings_refuse_a_lease_past_the_database_range(lead):
    client, project = lead
    status, msgs = settings_post(
        client, project, action="settings", query_strategy="auto", retrain_every=10,
        audit_share=0.1, overlap=1, lease_seconds=10**20,
    )
    assert status == 400 and msgs[0].startswith("lease seconds:"), msgs
    project.refresh_from_db()
    assert project.lease_seconds == 300


def test_adding_an_existing_class_is_400(lead):
    client, project = lead
    status, msgs = settings_post(client, project, action="add_class", name="cat")
    assert status == 400 and "already a class named 'cat'" in msgs[0]
    assert project.classes.filter(name="cat").count() == 1


@pytest.mark.parametrize("data", [
    {"action": "edit_class", "label": 10**30, "name": "x"},
    {"action": "merge", "source": "1e3", "target": 2},
    {"action": "reorder", "order": f"{10**30},1"},
    {"action": "remove_member", "membership": 2**63},
    {"action": "settings"},
])
def test_other_settings_actions_refuse_bad_values(lead, data):
    client, project = lead
    status, msgs = settings_post(client, project, **data)
    assert status == 400 and msgs and msgs[0], msgs


def failing_view(request):
    raise RuntimeError("boom from the failing test view")


urlpatterns = [path("fail/", failing_view)]


@override_settings(ROOT_URLCONF=__name__)
def test_unexpected_errors_are_logged_with_their_traceback(make_user, settings):
    """Django logs a 500 on django.request; our LOGGING sends it to stderr and the error log."""
    if not settings.ERROR_LOG:
        pytest.skip("LABELER_ERROR_LOG is set empty")
    log = Path(settings.ERROR_LOG)
    before = log.stat().st_size if log.exists() else 0
    client = Client(raise_request_exception=False)
    client.force_login(make_user("someone"))
    assert client.get("/fail/").status_code == 500
    written = log.read_text()[before:]
    assert "Internal Server Error: /fail/" in written
    assert "Traceback" in written and "RuntimeError: boom from the failing test view" in written
