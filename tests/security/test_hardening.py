"""Issue #11, item 8: no orphan files after a failed import, weights only from the weights
folder, login failures throttled, a removed member's leases released."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from labeler.annotations.queue import next_items
from labeler.items.importing import import_uploads
from labeler.items.models import Item
from labeler.projects.models import Membership, Role
from labeler.projects.services import set_member, weights_in_folder

from ..conftest import jpeg_bytes, wait_for

pytestmark = pytest.mark.django_db


def media_files(settings) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


class BrokenUpload(SimpleUploadedFile):
    """An upload whose body can't be read (the connection dropped): the import fails."""

    def read(self, *args):
        raise OSError("connection reset while reading the upload")


def test_a_rolled_back_import_leaves_no_files(project_factory, settings):
    project = project_factory()
    uploads = [
        SimpleUploadedFile("a.jpg", jpeg_bytes((10, 20, 30))),
        SimpleUploadedFile("b.jpg", jpeg_bytes((40, 50, 60))),
        BrokenUpload("c.jpg", b""),
    ]
    with pytest.raises(OSError):
        import_uploads(project, uploads)
    assert Item.objects.filter(project=project).count() == 0
    assert media_files(settings) == []


def test_sweep_media_removes_only_old_unreferenced_files(project_factory, add_images, settings):
    project = project_factory()
    kept = add_images(project, 2)
    folder = Path(settings.MEDIA_ROOT) / "items" / str(project.pk) / "ab"
    folder.mkdir(parents=True)
    old_orphan, young_orphan = folder / ("ab" + "0" * 62 + ".jpg"), folder / ("ab" + "1" * 62 + ".jpg")
    gone_project = Path(settings.MEDIA_ROOT) / "items" / "999999" / "cd" / "x.jpg"
    gone_project.parent.mkdir(parents=True)
    for path in (old_orphan, young_orphan, gone_project):
        path.write_bytes(b"left over")
    hours_ago = time.time() - 2 * 3600
    for path in [old_orphan, gone_project] + [Path(i.image.path) for i in kept]:
        os.utime(path, (hours_ago, hours_ago))
    call_command("sweep_media")
    assert not old_orphan.exists() and not gone_project.exists()
    assert young_orphan.exists()  # may belong to an import still running
    assert all(Path(i.image.path).exists() for i in kept)


@pytest.fixture
def weights_dir(tmp_path, settings) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    settings.LABELER_WEIGHTS_DIR = str(folder)
    return folder


def test_weights_outside_missing_or_invalid_get_one_message(weights_dir, tmp_path):
    (weights_dir / "notes.pth").write_text("not a checkpoint")
    outside = tmp_path / "outside.pth"
    outside.write_bytes(b"PK\x03\x04 a real-looking zip header")
    (weights_dir / "link.pth").symlink_to(outside)
    messages = {}
    for given in ["/etc/passwd", "/etc/no-such-file", "../outside.pth", str(outside), "link.pth",
                  "missing.pth", "notes.pth", ".", "a\x00b"]:
        with pytest.raises(ValueError) as caught:
            weights_in_folder(given)
        messages[given] = str(caught.value).replace(repr(given), "<given>")
    assert len(set(messages.values())) == 1, messages


def test_a_checkpoint_inside_the_folder_is_accepted(weights_dir):
    (weights_dir / "sub").mkdir()
    checkpoint = weights_dir / "sub" / "mine.pth"
    checkpoint.write_bytes(b"PK\x03\x04" + b"\0" * 64)  # torch.save's zip format
    assert weights_in_folder("sub/mine.pth") == checkpoint.resolve()
    assert weights_in_folder(str(checkpoint)) == checkpoint.resolve()


def test_settings_page_refuses_a_server_path(client, make_user, project_factory, weights_dir):
    project = project_factory()
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    response = client.post(reverse("projects:settings", args=[project.pk]), {
        "action": "backbone", "backbone": "resnet18", "weights_path": "/etc/passwd"})
    assert response.status_code == 400
    message = str(list(response.context["messages"])[0])
    assert "No usable weights file" in message and "IndexError" not in message
    project.refresh_from_db()
    assert project.pending_backbone == "" and project.pending_weights == ""


def test_login_failures_are_throttled_per_account_and_address(client, make_user, settings):
    make_user("victim", password="the-right-password")
    url = reverse("login")
    statuses = [client.post(url, {"username": "victim", "password": "wrong"}).status_code
                for _ in range(settings.AXES_FAILURE_LIMIT + 5)]
    # The form again with its error, until the limit; then refused.
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429] * 6
    response = client.post(url, {"username": "victim", "password": "the-right-password"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # The same account from another address is not locked out.
    response = client.post(url, {"username": "victim", "password": "the-right-password"},
                           REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_removing_a_member_releases_their_leases(client, make_user, project_factory, add_images):
    project = project_factory()
    add_images(project, 4)
    lead, annotator = make_user("lead"), make_user("ann")
    set_member(project, lead, Role.LEAD)
    set_member(project, annotator, Role.ANNOTATOR)
    held = next_items(project, annotator, 3)
    assert Item.objects.filter(leased_by=annotator).count() == 3
    client.force_login(lead)
    membership = Membership.objects.get(project=project, user=annotator)
    response = client.post(reverse("projects:settings", args=[project.pk]),
                           {"action": "remove_member", "membership": membership.pk})
    assert response.status_code == 302
    assert Item.objects.filter(leased_by=annotator).count() == 0
    # Another annotator gets those items at once.
    other = make_user("other")
    set_member(project, other, Role.ANNOTATOR)
    assert {i.pk for i in held} <= {i.pk for i in next_items(project, other, 4)}


def test_deleting_a_membership_in_the_admin_releases_leases(make_user, project_factory, add_images):
    project = project_factory()
    add_images(project, 2)
    annotator = make_user("ann")
    set_member(project, annotator, Role.ANNOTATOR)
    next_items(project, annotator, 2)
    Membership.objects.filter(project=project, user=annotator).delete()  # what the admin does
    assert Item.objects.filter(leased_by=annotator).count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_import_killed_mid_way_leaves_files_the_sweep_removes(project_factory, settings,
                                                                  tmp_path):
    """SIGKILL an import between two commits: its last block's rows roll back, its files stay
    (nothing in the process can clean up); sweep_media then removes exactly those."""
    from ..conftest import REPO, _test_database_url

    project = project_factory()
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(600):
        (folder / f"{i:04d}.jpg").write_bytes(jpeg_bytes((i % 256, i // 256, 7), size=(16, 16)))
    env = dict(os.environ, DATABASE_URL=_test_database_url(), LABELER_ERROR_LOG="",
               LABELER_MEDIA_ROOT=str(settings.MEDIA_ROOT), DJANGO_SETTINGS_MODULE="labeler.settings")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "import_images", str(project.pk), str(folder)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    items = Path(settings.MEDIA_ROOT) / "items"
    try:
        wait_for(lambda: len(media_files(settings)) >= 220 or proc.poll() is not None, 120, 0.005,
                 "the import to write its second block")
    finally:
        proc.kill()
        proc.wait(10)
    on_disk = {p.relative_to(settings.MEDIA_ROOT).as_posix() for p in items.rglob("*") if p.is_file()}
    referenced = set(Item.objects.filter(project=project).values_list("image", flat=True))
    assert referenced < on_disk, "the kill came between blocks; no orphans to sweep"
    call_command("sweep_media", min_age=0)
    left = {p.relative_to(settings.MEDIA_ROOT).as_posix() for p in items.rglob("*") if p.is_file()}
    assert left == referenced
