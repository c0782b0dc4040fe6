"""Names are held to the model's max_length on every path that stores them (SQLite would keep a
100,000-character class name; PostgreSQL would answer 500): a clear message instead."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeler.items.importing import import_folder
from labeler.projects.models import LabelClass, Project, Role
from labeler.projects.services import add_class, set_member, update_settings

from ..conftest import jpeg_bytes

pytestmark = pytest.mark.django_db
LIMIT = LabelClass._meta.get_field("name").max_length


def _post(client, project, **data) -> list[str]:
    r = client.post(reverse("projects:settings", args=[project.pk]), data, follow=True)
    msgs = list(r.context["messages"])
    # Refused input re-renders the page with the message and a 400; success redirects.
    assert r.status_code == (400 if any(m.level_tag == "error" for m in msgs) else 200)
    return [str(m) for m in msgs]


def test_settings_refuse_overlong_and_duplicate_class_names(client, make_user, project_factory):
    project = project_factory("P", classes=["cat"])
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    msgs = _post(client, project, action="add_class", name="x" * 100_000)
    assert len(msgs) == 1 and msgs[0].endswith(
        f"Ensure this value has at most {LIMIT} characters (it has 100000).")
    assert _post(client, project, action="add_class", name="y" * (LIMIT + 1))[0].endswith(
        f"at most {LIMIT} characters (it has {LIMIT + 1}).")
    assert _post(client, project, action="add_class", name="y" * LIMIT) == ["Class added."]
    assert "already a class named" in _post(client, project, action="add_class", name="cat")[0]
    cat = project.classes.get(name="cat")
    msgs = _post(client, project, action="edit_class", label=cat.pk, name="z" * (LIMIT + 1))
    assert f"at most {LIMIT} characters" in msgs[0]
    assert sorted(len(n) for n in project.classes.values_list("name", flat=True)) == [3, LIMIT]


def test_create_project_form_checks_each_class_name(client, make_user):
    admin = make_user("root", staff=True)
    client.force_login(admin)
    r = client.post(reverse("projects:create"), {
        "name": "New", "description": "", "retrain_every": 10,
        "classes": "ok\n" + "w" * (LIMIT + 1),
    })
    assert r.status_code == 200 and f"at most {LIMIT} characters" in r.content.decode()
    r = client.post(reverse("projects:create"), {
        "name": "n" * 201, "description": "", "retrain_every": 10, "classes": "a",
    })
    assert r.status_code == 200 and "at most 200 characters" in r.content.decode()
    assert not Project.objects.exists()


def test_services_and_folder_import_refuse_overlong_names(tmp_path, project_factory):
    project = project_factory("P", classes=["cat"])
    with pytest.raises(ValueError, match="at most"):
        add_class(project, "q" * (LIMIT + 1))
    with pytest.raises(ValueError, match="Name: Ensure"):
        update_settings(project, name="n" * 201)
    long_folder = "f" * (LIMIT + 20)
    (tmp_path / long_folder).mkdir()
    (tmp_path / long_folder / "a.jpg").write_bytes(jpeg_bytes((1, 2, 3)))
    report = import_folder(project, tmp_path, labels_from_folders=True)
    assert len(report.created) == 1 and report.labeled == 0
    assert "imported without a label" in report.errors[f"{long_folder}/a.jpg"]
    assert list(project.classes.values_list("name", flat=True)) == ["cat"]
