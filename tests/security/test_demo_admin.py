"""The demo admin (public password) exists only in the demo, never in production mode."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labeler.projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_shared_data(monkeypatch, tmp_path):
    """The demo imports scikit-learn's two sample photos instead of ../shared (fast, offline)."""
    monkeypatch.setenv("LABELER_DEMO_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("LABELER_DEMO_MULTITASK_DATA", str(tmp_path / "absent"))
    monkeypatch.delenv("LABELER_DEMO", raising=False)


def test_production_never_creates_the_demo_admin(settings, no_shared_data):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="createsuperuser"):
        call_command("setup_demo", "--create-admin", "--limit", "2")
    assert not get_user_model().objects.exists()
    assert not Project.objects.exists()


def test_without_the_demo_switch_no_admin_is_created(no_shared_data):
    with pytest.raises(CommandError, match="LABELER_DEMO"):
        call_command("setup_demo", "--limit", "2")
    assert not get_user_model().objects.exists()


def test_production_demo_project_uses_an_existing_account(settings, no_shared_data, make_user):
    settings.PRODUCTION = True
    lead = make_user("alice")
    call_command("setup_demo", "--username", "alice", "--limit", "2")
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]
    project = Project.objects.get()
    assert project.memberships.get(user=lead).role == "lead"


def test_the_demo_creates_its_admin(monkeypatch, no_shared_data):
    monkeypatch.setenv("LABELER_DEMO", "1")  # what `make run` (scripts/run.sh) sets
    call_command("setup_demo", "--limit", "2")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("labeler-demo")
