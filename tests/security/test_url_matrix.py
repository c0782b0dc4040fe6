"""The role x URL matrix, generated from the URL conf: every URL pattern (admin and every app's
urls.py) is requested as staff, lead, annotator, non-member and anonymous, with the ids of the
users' own project and of ANOTHER project. Each pattern needs a rule in RULES (or ADMIN_MODELS):
a URL added without one fails test_every_url_has_a_rule.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver

from labeler.projects.models import Project, Role
from labeler.projects.services import set_member

pytestmark = pytest.mark.django_db

ROLES = ("staff", "lead", "annotator", "stranger", "anonymous")

# kind: who may use it (see expected()); method; ok: statuses of an allowed request (POST
# endpoints get an empty body: allowed callers reach validation, a 400).
RULES: dict[str, dict] = {
    "login": {"kind": "public", "method": "get", "ok": {200}},
    "favicon": {"kind": "public", "method": "get", "ok": {301}},
    "logout": {"kind": "logout", "method": "post", "ok": {302}},
    "projects:list": {"kind": "user", "method": "get", "ok": {200}},
    "projects:create": {"kind": "staff", "method": "get", "ok": {200}},
    "projects:detail": {"kind": "member", "method": "get", "ok": {200}},
    "projects:status": {"kind": "member", "method": "get", "ok": {200}},
    "projects:settings": {"kind": "lead", "method": "get", "ok": {200}},
    "items:image": {"kind": "member", "method": "get", "ok": {200}},
    "annotations:label": {"kind": "member", "method": "get", "ok": {200}},
    "annotations:next": {"kind": "member", "method": "get", "ok": {200}},
    "annotations:annotate": {"kind": "member", "method": "post", "ok": {400}},
    "annotations:skip": {"kind": "member", "method": "post", "ok": {400}},
    "annotations:grid": {"kind": "member", "method": "get", "ok": {200}},
    "annotations:grid_items": {"kind": "member", "method": "get", "ok": {400}},  # no ?label=
    "annotations:grid_confirm": {"kind": "member", "method": "post", "ok": {400}},
    "insights:dashboard": {"kind": "lead", "method": "get", "ok": {200}},
    "insights:label_errors": {"kind": "lead", "method": "get", "ok": {200}},
    "insights:map": {"kind": "lead", "method": "get", "ok": {200}},
    "insights:item": {"kind": "lead", "method": "get", "ok": {200}},
    "insights:items": {"kind": "lead", "method": "get", "ok": {200}},
    "insights:export": {"kind": "lead", "method": "get", "ok": {200, 409}},
    "insights:map_data": {"kind": "lead", "method": "get", "ok": {200}},
    "insights:relabel": {"kind": "lead", "method": "post", "ok": {400}},
    "insights:thumb": {"kind": "member", "method": "get", "ok": {200}},
    "training:run_check": {"kind": "lead", "method": "post", "ok": {302}},
    "training:check_status": {"kind": "lead", "method": "get", "ok": {200}},
    # The public API (labeler.api) and its pages; tests/api checks each with tokens too.
    "api:projects": {"kind": "user", "method": "get", "ok": {200}},
    "api:project": {"kind": "member", "method": "get", "ok": {200}},
    "api:status": {"kind": "member", "method": "get", "ok": {200}},
    "api:classes": {"kind": "member", "method": "get", "ok": {200}},
    "api:class": {"kind": "lead", "method": "patch", "ok": {200}},
    "api:members": {"kind": "lead", "method": "get", "ok": {200}},
    "api:member": {"kind": "lead", "method": "patch", "ok": {400, 404}},  # 404: no members
    "api:items": {"kind": "lead", "method": "get", "ok": {200}},
    "api:items-upload": {"kind": "lead", "method": "post", "ok": {415}},  # multipart only
    "api:items-import-urls": {"kind": "lead", "method": "post", "ok": {400}},
    "api:item": {"kind": "member", "method": "get", "ok": {200}},
    "api:item-image": {"kind": "member", "method": "get", "ok": {200}},
    "api:annotations": {"kind": "lead", "method": "get", "ok": {200}},
    "api:annotations-bulk": {"kind": "lead", "method": "post", "ok": {400}},
    "api:predictions": {"kind": "lead", "method": "get", "ok": {409}},  # no model yet
    "api:next": {"kind": "member", "method": "post", "ok": {200}},
    "api:skip": {"kind": "member", "method": "post", "ok": {400}},
    "api:model-versions": {"kind": "lead", "method": "get", "ok": {200}},
    "api:model-version": {"kind": "lead", "method": "get", "ok": {404}},  # none yet
    "api:model-head": {"kind": "lead", "method": "get", "ok": {404}},
    "api:retrain": {"kind": "lead", "method": "post", "ok": {202}},
    "api:exports": {"kind": "lead", "method": "get", "ok": {200}},
    "api:export": {"kind": "lead", "method": "get", "ok": {404}},  # none yet
    "api:export-download": {"kind": "lead", "method": "get", "ok": {404}},
    "api:webhooks": {"kind": "lead", "method": "get", "ok": {200}},
    "api:webhook": {"kind": "lead", "method": "get", "ok": {404}},  # none yet
    "api:deliveries": {"kind": "lead", "method": "get", "ok": {404}},
    "api:schema": {"kind": "user", "method": "get", "ok": {200}},
    "api:docs": {"kind": "user", "method": "get", "ok": {200}},
    "api_tokens": {"kind": "user", "method": "get", "ok": {200}},
    "api_token_revoke": {"kind": "user", "method": "post", "ok": {404}},  # not their token
    "webhooks:page": {"kind": "lead", "method": "get", "ok": {200}},
}
ADMIN_SITE = [
    "admin:index", "admin:logout", "admin:password_change", "admin:password_change_done",
    "admin:autocomplete", "admin:jsi18n", "admin:view_on_site", "admin:app_list",
    "admin:auth_user_password_change", "admin:<catch-all>",
]
ADMIN_MODELS = [
    "auth_group", "auth_user", "projects_project", "projects_labelclass", "projects_membership",
    "items_item", "annotations_annotation", "training_modelversion", "training_backbonecheck", "axes_accessattempt",
    "axes_accesslog", "axes_accessfailurelog", "training_job", "api_apitoken", "webhooks_webhook",
    "webhooks_delivery",
]
ADMIN_VIEWS = ["changelist", "add", "history", "delete", "change", "<object-redirect>"]
# Staff get the admin's own answers (405 for GET logout, 403 to add to axes' read-only logs, 404
# for an unknown page); what matters is that nobody else gets past the admin login.
for _name in ADMIN_SITE + [f"admin:{m}_{v}" for m in ADMIN_MODELS for v in ADMIN_VIEWS]:
    RULES[_name] = {"kind": "admin", "method": "get", "ok": {200, 302, 403, 404, 405}}
RULES["admin:login"] = {"kind": "public", "method": "get", "ok": {200, 302}}


def url_patterns(patterns=None, prefix: str = "", namespace: str = ""):
    """(key, route) for every pattern, recursively; unnamed ones get a descriptive key."""
    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            ns = namespace + (f"{p.namespace}:" if p.namespace else "")
            yield from url_patterns(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            route = prefix + str(p.pattern)
            name = p.name
            if name is None:
                name = "<catch-all>" if "(?P<url>" in route else None
                if name is None and re.search(r"/(\w+)/(\w+)/<path:object_id>/$", route):
                    model = "_".join(re.search(r"admin/(\w+)/(\w+)/<path", route).groups())
                    name = f"{model}_<object-redirect>"
            yield namespace + name, route


def test_every_url_has_a_rule():
    missing = [f"{key} ({route})" for key, route in url_patterns() if key not in RULES]
    assert not missing, "URLs without an access rule in RULES: " + ", ".join(missing)


@pytest.fixture
def world(client, make_user, project_factory, add_images):
    own, other = project_factory("Own"), project_factory("Other")
    add_images(own, 2)
    add_images(other, 2)
    users = {
        "staff": make_user("root", staff=True),
        "lead": make_user("lead"),
        "annotator": make_user("ann"),
        "stranger": make_user("stranger"),
    }
    set_member(own, users["lead"], Role.LEAD)
    set_member(own, users["annotator"], Role.ANNOTATOR)
    return own, other, users


def fill(route: str, project: Project) -> str:
    """The route with the ids of `project` (and of its objects) in place of its parameters."""
    if "(?P<app_label>" in route:
        return "/admin/projects/"
    if "(?P<url>" in route:
        return "/admin/no-such-page/"
    item = project.items.first()
    values = {
        "project_id": project.pk, "item_id": item.pk, "fmt": "csv", "object_id": project.pk,
        "id": project.memberships.values_list("user_id", flat=True).first() or 1,
        "content_type_id": ContentType.objects.get_for_model(Project).pk,
        "class_id": project.classes.first().pk, "number": 1, "webhook_id": 1, "token_id": 1,
        "job_id": 1,
        "user_id": project.memberships.values_list("user_id", flat=True).first() or 1,
    }
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)


def expected(kind: str, role: str, own: bool) -> str:
    """'ok', 'login' (redirect to the login page), 'admin-login', '403' or '404'."""
    if kind == "public":
        return "ok"
    if kind == "logout":
        return "login"
    if kind == "admin":
        return "ok" if role == "staff" else "admin-login"
    if role == "anonymous":
        return "login"
    if kind == "user" or role == "staff":
        return "ok"
    if kind == "staff":
        return "403"
    if role == "stranger" or not own:
        return "404"  # never reveal that another project exists
    if kind == "lead" and role == "annotator":
        return "403"
    return "ok"


@pytest.mark.parametrize("role", ROLES)
def test_role_url_matrix(client, world, role):
    own, other, users = world
    failures = []
    for key, route in url_patterns():
        rule = RULES[key]
        # Admin URLs don't depend on the project: once, with the other project's ids.
        targets = ((other, False),) if rule["kind"] == "admin" else ((own, True), (other, False))
        for project, is_own in targets:
            client.logout()
            if role != "anonymous":
                client.force_login(users[role])
            url = fill(route, project)
            if rule["method"] in ("post", "patch"):
                send = getattr(client, rule["method"])
                response = send(url, b"{}", content_type="application/json")
            else:
                response = client.get(url)
            want = expected(rule["kind"], role, is_own)
            status = response.status_code
            location = response.get("Location", "")
            if want == "ok":
                good = status in rule["ok"]
            elif want == "login":
                good = (status == 302 and location.startswith("/accounts/login/")) or (
                    url.startswith("/api/") and status in (401, 403))
            elif want == "admin-login":  # (anonymous: the site's login comes first)
                good = status == 302 and (
                    location.startswith(("/admin/login/", "/accounts/login/"))
                    or location == "/admin/"  # admin logout of a non-staff user: to the index
                )
            else:
                good = status == int(want)
            if not good:
                failures.append(f"{role} {rule['method'].upper()} {url} ({key}): {status} "
                                f"{location}, expected {want}")
    assert not failures, "\n".join(failures)
