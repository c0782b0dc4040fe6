"""Personal tokens: shown once, stored as a digest, revocable, expiring; rate-limited
failures; the session (with CSRF) still works for the pages' own calls."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from labeler.api.models import ApiToken
from labeler.api.tokens import create_token

pytestmark = pytest.mark.django_db


def bearer(token: str, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_created_on_the_page_shown_once_stored_hashed(client, make_user):
    user = make_user("lead")
    client.force_login(user)
    page = client.post("/account/tokens/", {"name": "notebook", "days": "30"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    token = re.search(r"lbl_[0-9a-f]{12}_[\w-]{43}", page.content.decode()).group(0)
    row = ApiToken.objects.get(user=user)
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ApiToken.objects.filter(pk=row.pk).values().get())
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)
    assert token not in client.get("/account/tokens/").content.decode()  # never again
    me = bearer(token).get("/api/v1/projects/")
    assert me.status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_bad_token_form_is_a_400(client, make_user):
    client.force_login(make_user("lead"))
    assert client.post("/account/tokens/", {"name": "", "days": "0"}).status_code == 400
    assert not ApiToken.objects.exists()


def test_revoked_on_the_page_and_only_by_its_owner(client, make_user):
    owner, other = make_user("owner"), make_user("other")
    row, token = create_token(owner, "ci")
    client.force_login(other)
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 404
    assert bearer(token).get("/api/v1/projects/").status_code == 200
    client.force_login(owner)
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 302
    answer = bearer(token).get("/api/v1/projects/")
    assert answer.status_code == 401 and answer["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in answer.json()["error"]


@pytest.mark.parametrize("bad", ["lbl_nothere_x", "garbage", "lbl_", "lbl_abc_def ghi",
                                 "ünïcode", "a" * 500])
def test_unknown_tokens_are_401(make_user, bad):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bad}")
    assert client.get("/api/v1/projects/").status_code == 401


def test_a_right_prefix_with_a_wrong_secret_is_401(make_user):
    row, token = create_token(make_user("u"), "x")
    assert bearer(token[:-3] + "abc").get("/api/v1/projects/").status_code == 401


def test_expired_and_inactive_users_tokens_are_401(make_user):
    user = make_user("u")
    row, token = create_token(user, "short", expires_at=timezone.now() + timedelta(hours=1))
    assert bearer(token).get("/api/v1/projects/").status_code == 200
    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(token).get("/api/v1/projects/").status_code == 401
    _, token2 = create_token(user, "other")
    user.is_active = False
    user.save()
    assert bearer(token2).get("/api/v1/projects/").status_code == 401


def test_failures_are_rate_limited_per_address(make_user, settings):
    settings.LABELER_API_AUTH_FAILURES = 5
    _, good = create_token(make_user("u"), "x")
    for _ in range(5):
        assert bearer("lbl_guess_guess", "10.9.9.9").get("/api/v1/projects/").status_code == 401
    locked = bearer(good, "10.9.9.9").get("/api/v1/projects/")
    assert locked.status_code == 429 and "Retry-After" in locked
    assert bearer(good, "10.9.9.8").get("/api/v1/projects/").status_code == 200


def test_session_auth_keeps_working_with_csrf(make_user, project_factory):
    lead = make_user("lead")
    project = project_factory("P", lead=lead)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(lead)
    assert client.get(f"/api/v1/projects/{project.pk}/").status_code == 200
    url = f"/api/v1/projects/{project.pk}/"
    refused = client.patch(url, {"description": "x"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    client.get("/account/tokens/")  # the page sets the CSRF cookie, as pages do
    csrf = client.cookies["csrftoken"].value
    ok = client.patch(url, {"description": "x"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert ok.status_code == 200


def test_admin_creates_a_token_and_sees_it_once(client, make_user):
    admin, user = make_user("root", staff=True), make_user("script-user")
    client.force_login(admin)
    page = client.post("/admin/api/apitoken/add/", {"user": user.pk, "name": "pipeline"},
                       follow=True)
    token = re.search(r"lbl_[0-9a-f]{12}_[\w-]{43}", page.content.decode()).group(0)
    assert ApiToken.objects.get().user == user
    assert bearer(token).get("/api/v1/projects/").status_code == 200


def test_a_shared_cache_that_is_down_is_no_500(make_user):
    _, token = create_token(make_user("u"), "x")
    down = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1
    with override_settings(CACHES=down):
        assert bearer(token).get("/api/v1/projects/").status_code == 200
        assert bearer("lbl_bad_bad").get("/api/v1/projects/").status_code == 401
