"""Every page and API needs a login; roles are enforced on the server."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeler.projects.models import Role
from labeler.projects.services import set_member

pytestmark = pytest.mark.django_db


def test_every_page_requires_login(client, project_factory, add_images):
    project = project_factory()
    item = add_images(project, 1)[0]
    urls = [
        reverse("projects:list"),
        reverse("projects:detail", args=[project.pk]),
        reverse("projects:status", args=[project.pk]),
        reverse("projects:create"),
        reverse("annotations:label", args=[project.pk]),
        reverse("annotations:next", args=[project.pk]),
        reverse("items:image", args=[item.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    response = client.post(reverse("annotations:annotate", args=[project.pk]), {})
    assert response.status_code == 302


def test_annotator_sees_only_own_projects(client, make_user, project_factory, add_images):
    mine = project_factory("Mine")
    other = project_factory("Other")
    other_item = add_images(other, 1)[0]
    user = make_user("ann")
    set_member(mine, user, Role.ANNOTATOR)
    client.force_login(user)
    listing = client.get(reverse("projects:list")).content.decode()
    assert "Mine" in listing and "Other" not in listing
    assert client.get(reverse("projects:detail", args=[mine.pk])).status_code == 200
    for url in [
        reverse("projects:detail", args=[other.pk]),
        reverse("annotations:label", args=[other.pk]),
        reverse("annotations:next", args=[other.pk]),
        reverse("items:image", args=[other_item.pk]),
    ]:
        assert client.get(url).status_code == 404, url


def test_annotator_cannot_upload_or_create(client, make_user, project_factory):
    project = project_factory()
    user = make_user("ann")
    set_member(project, user, Role.ANNOTATOR)
    client.force_login(user)
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .conftest import jpeg_bytes

    upload = SimpleUploadedFile("a.jpg", jpeg_bytes((1, 2, 3)), content_type="image/jpeg")
    response = client.post(reverse("projects:detail", args=[project.pk]), {"files": [upload]})
    assert response.status_code == 403
    assert project.items.count() == 0
    assert client.get(reverse("projects:create")).status_code == 403
    assert client.get(reverse("admin:index")).status_code == 302  # not staff: admin login


def test_lead_uploads_and_staff_sees_all(client, make_user, project_factory):
    project = project_factory()
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .conftest import jpeg_bytes

    files = [
        SimpleUploadedFile("a.jpg", jpeg_bytes((10, 20, 30)), content_type="image/jpeg"),
        SimpleUploadedFile("b.jpg", jpeg_bytes((200, 20, 30)), content_type="image/jpeg"),
    ]
    response = client.post(reverse("projects:detail", args=[project.pk]), {"files": files})
    assert response.status_code == 200
    assert project.items.count() == 2
    staff = make_user("root", staff=True)
    client.force_login(staff)
    assert client.get(reverse("projects:detail", args=[project.pk])).status_code == 200
    assert client.get(reverse("admin:index")).status_code == 200


def test_image_is_served_to_members(client, make_user, project_factory, add_images):
    project = project_factory()
    item = add_images(project, 1)[0]
    user = make_user("ann")
    set_member(project, user, Role.ANNOTATOR)
    client.force_login(user)
    response = client.get(reverse("items:image", args=[item.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"


def test_admin_lists_every_model(client, make_user, project_factory, add_images):
    project = project_factory()
    add_images(project, 2)
    client.force_login(make_user("root", staff=True))
    for name in [
        "projects_project", "projects_labelclass", "projects_membership", "items_item",
        "annotations_annotation", "training_modelversion",
    ]:
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name
