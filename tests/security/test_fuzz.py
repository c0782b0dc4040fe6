"""Property-based fuzzing of every endpoint that takes input (JSON bodies, posted forms, query
strings): arbitrary JSON values, huge integers, wrong types, deep nesting, unicode. Whatever comes
in, the answer is never a 5xx. Bounded: ~50 examples per endpoint, no deadline."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from labeler.annotations.queue import next_items
from labeler.projects.models import Role
from labeler.projects.services import set_member

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(max_examples=50, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

EDGE_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**20, 10**30]
scalars = (
    st.none() | st.booleans() | st.sampled_from(EDGE_INTS)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def bodies(keys: list[str], ids: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Bodies for an endpoint reading `keys`: plausible objects (real ids mixed with anything),
    arbitrary JSON, deep nesting and raw bytes."""
    value = ids | json_values | st.lists(ids, max_size=5)
    plausible = st.fixed_dictionaries({}, optional={k: value for k in keys}).map(
        lambda d: json.dumps(d).encode())
    anything = json_values.map(lambda v: json.dumps(v).encode())
    deep = st.integers(min_value=30, max_value=5000).map(
        lambda n: ('{"item":' * n + "1" + "}" * n).encode())
    return plausible | anything | deep | st.binary(max_size=64)


@pytest.fixture
def world(client, make_user, project_factory, add_images):
    project, other = project_factory("Fuzz"), project_factory("Other")
    add_images(project, 6)
    add_images(other, 2)
    lead, annotator = make_user("lead"), make_user("ann")
    set_member(project, lead, Role.LEAD)
    set_member(project, annotator, Role.ANNOTATOR)
    next_items(project, annotator, 3)  # some leases, so valid ids reach the deeper code
    ids = [*project.items.values_list("pk", flat=True), *other.items.values_list("pk", flat=True),
           *project.classes.values_list("pk", flat=True), *other.classes.values_list("pk", flat=True),
           *project.memberships.values_list("pk", flat=True)]
    return client, project, lead, annotator, st.sampled_from(ids)


def no_5xx(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code)


JSON_ENDPOINTS = {
    "annotations:annotate": ["item", "label", "seconds", "client_id"],
    "annotations:skip": ["item", "reason"],
    "annotations:grid_confirm": ["label", "confirmed", "rejected"],
    "insights:relabel": ["label"],
}


@pytest.mark.parametrize("name", sorted(JSON_ENDPOINTS))
def test_json_endpoints_never_5xx(world, name):
    client, project, lead, annotator, ids = world
    client.force_login(lead if name == "insights:relabel" else annotator)
    item = project.items.first().pk
    args = [project.pk, item] if name == "insights:relabel" else [project.pk]
    url = reverse(name, args=args)

    @FUZZ
    @given(body=bodies(JSON_ENDPOINTS[name], ids))
    def check(body):
        no_5xx(client.post(url, body, content_type="application/json"), body[:200])

    check()


form_text = st.text(max_size=40) | st.sampled_from([str(i) for i in EDGE_INTS]) | st.sampled_from(
    ["1e3", "nan", "inf", "-0", " 7 ", "1,2,3", "", "\x00", "٣"])

SETTINGS_ACTIONS = {
    "settings": ["query_strategy", "retrain_every", "audit_share", "overlap", "lease_seconds"],
    "backbone": ["backbone", "weights_path"],
    "add_class": ["name"],
    "edit_class": ["label", "name", "hotkey"],
    "reorder": ["order"],
    "merge": ["source", "target"],
    "member": ["username", "role"],
    "remove_member": ["membership"],
}


@pytest.mark.parametrize("action", sorted(SETTINGS_ACTIONS) + ["<any>"])
def test_settings_posts_never_5xx(world, action, tmp_path, settings):
    client, project, lead, _, ids = world
    settings.LABELER_WEIGHTS_DIR = str(tmp_path)
    client.force_login(lead)
    url = reverse("projects:settings", args=[project.pk])
    keys = SETTINGS_ACTIONS.get(action, ["action", "name", "label"])
    value = form_text | ids.map(str)

    @FUZZ
    @given(data=st.fixed_dictionaries({}, optional={k: value for k in keys}))
    def check(data):
        if action != "<any>":
            data = {**data, "action": action}
        if data.get("action") in ("remove_member", "merge"):
            return  # these change who may post and the classes: covered once below
        no_5xx(client.post(url, data), data)

    check()


def test_destructive_settings_actions_with_bad_values(world):
    client, project, lead, _, _ = world
    client.force_login(lead)
    url = reverse("projects:settings", args=[project.pk])
    for bad in [str(10**30), "-1", "0", "x", "", "\x00", "1.5", str(2**63)]:
        for data in ({"action": "remove_member", "membership": bad},
                     {"action": "merge", "source": bad, "target": bad}):
            response = client.post(url, data)
            assert response.status_code == 400, data


QUERY_ENDPOINTS = {
    "annotations:next": ["n", "exclude"],
    "annotations:grid_items": ["label", "n"],
    "insights:export": ["version"],
    "insights:label_errors": ["all"],
}


@pytest.mark.parametrize("name", sorted(QUERY_ENDPOINTS))
def test_query_strings_never_5xx(world, name):
    client, project, lead, _, ids = world
    client.force_login(lead)
    args = [project.pk, "csv"] if name == "insights:export" else [project.pk]
    url = reverse(name, args=args)
    value = form_text | ids.map(str) | st.lists(ids.map(str), max_size=4).map(",".join)

    @FUZZ
    @given(query=st.fixed_dictionaries({}, optional={k: value for k in QUERY_ENDPOINTS[name]}))
    def check(query):
        no_5xx(client.get(url, query), query)

    check()


def test_upload_and_create_forms_never_5xx(world, make_user):
    client, project, lead, _, _ = world
    client.force_login(lead)
    detail = reverse("projects:detail", args=[project.pk])
    create = reverse("projects:create")
    staff = make_user("root", staff=True)

    @FUZZ
    @given(data=st.dictionaries(st.sampled_from(["files", "name", "classes", "description",
                                                 "retrain_every"]), form_text, max_size=5))
    def check(data):
        client.force_login(lead)
        no_5xx(client.post(detail, data), data)
        client.force_login(staff)
        no_5xx(client.post(create, data), data)

    check()


def test_login_form_never_5xx(client, make_user):
    make_user("someone")

    @FUZZ
    @given(username=form_text, password=form_text)
    def check(username, password):
        no_5xx(client.post(reverse("login"), {"username": username, "password": password}),
               (username, password))

    check()
