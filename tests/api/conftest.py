"""Two projects, a user of each role with a token, and a lead's revoked and expired tokens."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from labeler.api.tokens import create_token, revoke_token
from labeler.projects.models import Role
from labeler.projects.services import set_member


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_failure_counts():
    """Token failures are counted per address in the cache: each test starts at zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_world(make_user, project_factory, add_images):
    own, other = project_factory("Own"), project_factory("Other")
    add_images(own, 3)
    add_images(other, 3)
    users = {
        "staff": make_user("root", staff=True), "lead": make_user("lead"),
        "annotator": make_user("ann"), "stranger": make_user("stranger"),
    }
    set_member(own, users["lead"], Role.LEAD)
    set_member(own, users["annotator"], Role.ANNOTATOR)
    set_member(other, make_user("other-lead"), Role.LEAD)
    tokens = {role: create_token(user, f"{role} script")[1] for role, user in users.items()}
    revoked, tokens["revoked"] = create_token(users["lead"], "old")
    revoke_token(revoked)
    expired, tokens["expired"] = create_token(
        users["lead"], "short", expires_at=timezone.now() + timedelta(seconds=30))
    expired.expires_at = timezone.now() - timedelta(seconds=1)
    expired.save()
    return SimpleNamespace(own=own, other=other, users=users, tokens=tokens)


def client_for(world, role: str) -> APIClient:
    client = APIClient()
    if role != "anonymous":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens[role]}")
    return client
