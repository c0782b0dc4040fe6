"""Every API endpoint for every caller: staff, lead, annotator, non-member, anonymous, a revoked
token and an expired token, on the caller's own project, on another project, and with another
project's object ids inside their own project's URLs (never a way across projects)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.utils import timezone

from labeler.training.models import Job, ModelVersion
from labeler.webhooks.services import create_webhook

from ..conftest import jpeg_bytes
from .conftest import client_for

pytestmark = pytest.mark.django_db

ROLES = ("staff", "lead", "annotator", "stranger", "anonymous", "revoked", "expired")
P = "/api/v1/projects/{p}/"
# (method, path, kind, body, statuses of an allowed call). kind: user (any signed-in caller),
# staff, member (lead or annotator of the project), lead. Destructive calls come last.
ENDPOINTS = [
    ("get", "/api/v1/projects/", "user", None, {200}),
    ("post", "/api/v1/projects/", "staff", lambda o: {"name": f"P-{uuid.uuid4()}",
                                                       "classes": ["a", "b"]}, {201}),
    ("get", "/api/v1/schema/", "user", None, {200}),
    ("get", P, "member", None, {200}),
    ("patch", P, "lead", {"description": "changed"}, {200}),
    ("get", P + "status/", "member", None, {200}),
    ("get", P + "classes/", "member", None, {200}),
    ("post", P + "classes/", "lead", lambda o: {"name": f"c-{uuid.uuid4().hex[:8]}"}, {201}),
    ("patch", P + "classes/{cls}/", "lead", {"hotkey": ""}, {200}),
    ("get", P + "members/", "lead", None, {200}),
    ("post", P + "members/", "lead", {"username": "nobody-else", "role": "annotator"}, {201}),
    ("patch", P + "members/{member}/", "lead", {"role": "annotator"}, {200}),
    ("get", P + "items/", "lead", None, {200}),
    ("post", P + "items/upload/", "lead", "upload", {201}),
    ("post", P + "items/import-urls/", "lead", {"urls": ["http://127.0.0.1:9/x.jpg"]}, {201}),
    ("get", P + "items/{item}/", "member", None, {200}),
    ("get", P + "items/{item}/image/", "member", None, {200}),
    ("get", P + "annotations/", "lead", None, {200}),
    ("post", P + "annotations/", "member", lambda o: {"item": o["item"], "label": o["cls"]},
     {200, 201}),
    ("post", P + "annotations/bulk/", "lead",
     lambda o: {"annotations": [{"item": o["item"], "label": o["cls"]}]}, {200}),
    ("get", P + "predictions/", "lead", None, {409}),  # no ready model
    ("post", P + "predictions/", "lead",
     lambda o: {"predictions": [{"item": o["item"], "label": o["cls"], "confidence": 0.5}]},
     {200}),
    ("post", P + "next/", "member", {"n": 2}, {200}),
    ("post", P + "skip/", "member", lambda o: {"item": o["item"]}, {204}),
    ("get", P + "model-versions/", "lead", None, {200}),
    ("get", P + "model-versions/1/", "lead", None, {200}),
    ("get", P + "model-versions/1/head/", "lead", None, {409}),  # v1 failed: no head
    ("post", P + "retrain/", "lead", None, {202}),
    ("get", P + "exports/", "lead", None, {200}),
    ("post", P + "exports/", "lead", {"format": "csv"}, {202}),
    ("get", P + "exports/{export}/", "lead", None, {200}),
    ("get", P + "exports/{export}/download/", "lead", None, {409}),  # its file is gone
    ("get", P + "webhooks/", "lead", None, {200}),
    ("post", P + "webhooks/", "lead",
     {"url": "https://93.184.216.34/hook", "events": ["annotation.created"]}, {201}),
    ("get", P + "webhooks/{hook}/", "lead", None, {200}),
    ("patch", P + "webhooks/{hook}/", "lead", {"active": True}, {200}),
    ("get", P + "webhooks/{hook}/deliveries/", "lead", None, {200}),
    ("delete", P + "webhooks/{hook}/", "lead", None, {204}),
    ("delete", P + "items/{item}/", "lead", None, {204}),
]


def objects_of(project) -> dict:
    return {
        "p": project.pk, "item": project.items.order_by("pk").last().pk,
        "cls": project.classes.first().pk,
        "member": project.memberships.exclude(user__username="nobody-else")
        .order_by("role", "pk").first().user_id,
        "hook": project.webhooks.first().pk,
        "export": project.jobs.filter(kind="export", status="done").first().pk,
    }


def expected(kind: str, role: str, own: bool) -> str:
    if role in ("anonymous", "revoked", "expired"):
        return "401"
    if kind == "user" or (role == "staff"):
        return "ok"
    if kind == "staff":
        return "403"
    if role == "stranger" or not own:
        return "404"
    if kind == "lead" and role == "annotator":
        return "403"
    return "ok"


def call(client, method: str, url: str, body):
    if body == "upload":
        return client.post(url, {"files": [_upload()]}, format="multipart")
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, format="json")


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"new-{uuid.uuid4().hex[:6]}.jpg",
                              jpeg_bytes((uuid.uuid4().int % 256, 10, 200)), "image/jpeg")


@pytest.fixture
def world(api_world, make_user, settings):
    settings.LABELER_API_AUTH_FAILURES = 10_000  # the bad tokens here are many, on purpose
    make_user("nobody-else")
    for project in (api_world.own, api_world.other):
        ModelVersion.objects.create(project=project, number=1, status="failed",
                                    backbone=project.backbone, strategy="auto")
        create_webhook(project, "https://93.184.216.34/hook", ["annotation.created"])
        Job.objects.create(project=project, kind="export", status="done", token="t",
                           params={"format": "csv"}, heartbeat_at=timezone.now())
    return api_world


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_for_every_caller(world, role):
    client = client_for(world, role)
    failures = []
    for method, path, kind, body, ok in ENDPOINTS:
        mine, theirs = objects_of(world.own), objects_of(world.other)
        targets = [("own", mine, True), ("other", theirs, False)]
        if "{" in path.replace("{p}", ""):
            # Another project's object id inside the caller's own project's URL.
            targets.append(("cross", {**theirs, "p": mine["p"]}, True))
        if "{p}" not in path:
            targets = targets[:1]
        for where, ids, own in targets:
            url = path.format(**ids)
            data = body(ids) if callable(body) else body
            if where == "cross" and isinstance(data, dict):
                data = {**data}
            response = call(client, method, url, data)
            want = expected(kind, role, own)
            if where == "cross" and want == "ok":
                # The ids are in the body for bulk calls: a 400 naming them, else a 404.
                good = response.status_code in ({400, 404} if "bulk" in path or
                                                 "predictions" in path else {404})
            elif want == "ok":
                good = response.status_code in ok
            else:
                good = response.status_code == int(want)
            if good and response.status_code >= 400:
                good = "error" in json.loads(response.content)  # every error is JSON with a message
            if not good:
                failures.append(f"{role} {method.upper()} {url} [{where}]: "
                                f"{response.status_code} {response.content[:150]!r}, "
                                f"expected {want} {sorted(ok) if want == 'ok' else ''}")
    assert not failures, "\n".join(failures)
