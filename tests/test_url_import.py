"""Import from a CSV of image URLs (manage.py import_images PROJECT urls.csv): labels from a
column, --no-copy keeps the URL, bad CSVs stop before anything is imported, and no fetch (import,
serving, or a GPU worker's read) reaches a private, loopback, link-local or reserved address,
also after a redirect."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeler.items.models import Item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from worker import storage
from worker.net_safety import UnsafeURL

from .api.receiver import Receiver
from .conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def write_csv(path, text: str):
    path.write_text(text)
    return str(path)


def test_csv_import_with_labels_copy_and_no_copy(tmp_path, project_factory, settings, capsys,
                                                 client, make_user, monkeypatch):
    settings.LABELER_ALLOW_PRIVATE_URLS = True  # an admin's choice: the server is local here
    project = project_factory("Urls", classes=["red"])
    red, blue = jpeg_bytes((250, 0, 0)), jpeg_bytes((0, 0, 250))
    with Receiver(script=[(200, {}, red), (200, {}, blue), (404, {}, b"no")]) as server:
        base = f"http://127.0.0.1:{server.port}"
        csv_path = write_csv(tmp_path / "urls.csv", f"url,label\n{base}/a/red.jpg,red\n"
                                                    f"{base}/b/blue.jpg,blue\n{base}/gone.jpg,\n")
        call_command("import_images", "Urls", csv_path)
    out = capsys.readouterr()
    assert "2 imported, 2 with labels" in out.out and "404" in out.err
    assert sorted(project.classes.values_list("name", flat=True)) == ["blue", "red"]
    copied = project.items.get(original_name="127.0.0.1/red.jpg")
    assert copied.image.name and not copied.source

    with Receiver(script=[(200, {}, jpeg_bytes((0, 250, 0)))]) as server:
        url = f"http://127.0.0.1:{server.port}/green.jpg"
        call_command("import_images", "Urls", write_csv(tmp_path / "more.csv", f"{url}\n"),
                     "--no-copy")
        item = project.items.get(source=url)
        assert not item.image.name
        lead = make_user("lead")
        set_member(project, lead, Role.LEAD)
        client.force_login(lead)
        got = client.get(reverse("items:image", args=[item.pk]))
        assert got.status_code == 200 and got["Content-Type"] == "image/jpeg"
        assert b"".join(got.streaming_content) == jpeg_bytes((0, 250, 0))
        # The GPU worker reads it the same way (its own setting: the environment).
        monkeypatch.setenv("LABELER_ALLOW_PRIVATE_URLS", "1")
        assert storage.read_bytes(url) == jpeg_bytes((0, 250, 0))
        monkeypatch.delenv("LABELER_ALLOW_PRIVATE_URLS")
        before = len(server.requests)
        with pytest.raises(UnsafeURL):
            storage.read_bytes(url)
        # Serving refuses it as well once private addresses are no longer allowed.
        settings.LABELER_ALLOW_PRIVATE_URLS = False
        assert client.get(reverse("items:image", args=[item.pk])).status_code == 404
        assert len(server.requests) == before  # the refused reads never reached it


@pytest.mark.parametrize("text, message", [
    ("url,label\nftp://example.com/a.jpg,x\n", "line 2"),
    ("url\nhttps://example.com/a.jpg\nnot a url\n", "line 3"),
    ("label\n", "line 1: 'label' is not an http"),
    ("url,label\n\n", "no URLs"),
    ("", "no URLs"),
])
def test_bad_csv_is_refused_before_anything_is_imported(tmp_path, project_factory, text,
                                                        message):
    project = project_factory("Bad")
    with pytest.raises(CommandError, match=message):
        call_command("import_images", "Bad", write_csv(tmp_path / "bad.csv", text))
    assert project.items.count() == 0
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_images", "Bad", str(tmp_path / "missing.csv"))
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CommandError, match="not a readable CSV"):
        call_command("import_images", "Bad", str(tmp_path / "binary.csv"))


@pytest.mark.parametrize("host", [
    "127.0.0.1",          # loopback (the test's own server)
    "localhost",          # a name that resolves to loopback
    "[::1]",              # IPv6 loopback
    "10.0.0.1",           # private
    "192.168.1.1",        # private
    "172.16.0.1",         # private
    "169.254.169.254",    # link-local (cloud metadata)
    "[fe80::1]",          # IPv6 link-local
    "[::ffff:127.0.0.1]", # IPv4-mapped loopback
    "[::ffff:10.0.0.1]",  # IPv4-mapped private
    "0.0.0.0",            # unspecified
    "100.64.0.1",         # shared (carrier-grade NAT)
    "240.0.0.1",          # reserved
    "224.0.0.1",          # multicast
])
def test_private_addresses_are_refused(tmp_path, project_factory, settings, capsys, host):
    settings.LABELER_ALLOW_PRIVATE_URLS = False
    project = project_factory("Ssrf")
    with Receiver() as server:
        target = host if host != "127.0.0.1" else f"127.0.0.1:{server.port}"
        url = f"http://{target}/a.jpg"
        call_command("import_images", "Ssrf", write_csv(tmp_path / "u.csv", f"url\n{url}\n"),
                     "--no-copy")
        assert server.requests == []
    out = capsys.readouterr()
    assert "0 imported" in out.out and "refused" in out.err
    assert project.items.count() == 0


def test_a_redirect_to_a_private_address_is_refused(tmp_path, project_factory, settings,
                                                    capsys, monkeypatch):
    settings.LABELER_ALLOW_PRIVATE_URLS = False
    # 127.0.0.1 plays a public server here; 127.0.0.2 (also on this machine) a private one.
    monkeypatch.setattr("worker.net_safety.is_public", lambda a: str(a) == "127.0.0.1")
    project = project_factory("Redirect")
    with Receiver("127.0.0.2", [(200, {}, jpeg_bytes((5, 5, 5)))]) as inside:
        inside_url = f"http://127.0.0.2:{inside.port}/secret.jpg"
        with Receiver("127.0.0.1", [(302, {"Location": inside_url})]) as outside:
            url = f"http://127.0.0.1:{outside.port}/photo.jpg"
            call_command("import_images", "Redirect",
                         write_csv(tmp_path / "r.csv", f"url\n{url}\n"))
            assert len(outside.requests) == 1
            # The worker's read of a referenced URL checks every hop the same way.
            with pytest.raises(UnsafeURL, match="127.0.0.2"):
                storage.read_bytes(url)
        assert inside.requests == []
    out = capsys.readouterr()
    assert "0 imported" in out.out and "127.0.0.2" in out.err
    assert Item.objects.filter(project=project).count() == 0


def test_api_import_by_url_without_copy(project_factory, make_user, settings):
    """The API's import by URL takes no_copy too, and items show their source."""
    from rest_framework.test import APIClient

    settings.LABELER_ALLOW_PRIVATE_URLS = True
    project = project_factory("Api")
    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    api = APIClient()
    api.force_authenticate(lead)
    with Receiver(script=[(200, {}, jpeg_bytes((200, 100, 0)))]) as server:
        url = f"http://127.0.0.1:{server.port}/x.jpg"
        report = api.post(f"/api/v1/projects/{project.pk}/items/import-urls/",
                          {"urls": [url], "no_copy": True}, format="json").json()
        assert report["created"] == 1
        item = api.get(f"/api/v1/projects/{project.pk}/items/{report['item_ids'][0]}/").json()
        assert item["source"] == url
        image = api.get(item["image_url"])
        assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
