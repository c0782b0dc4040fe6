"""Stored XSS through an upload: the stored name and the served type come from the format the
decoder detected, never from the client's file name. A real JPEG with HTML appended, uploaded
as evil.html (or .svg, .xhtml), is stored and served as a JPEG; files stored before that rule
(``<sha>.html``) are served as the image they are, or refused."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.urls import reverse
from PIL import Image

from labeler.insights import exports
from labeler.items.importing import Importer
from labeler.items.models import Item
from labeler.items.validation import IMAGE_TYPES, check_image, detect_type

from ..conftest import jpeg_bytes
from .hostile import HTML_PAYLOAD, evil_jpeg

pytestmark = pytest.mark.django_db
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>window.__xss=1</script></svg>'


def image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,ext,content_type", [
    ("JPEG", "jpg", "image/jpeg"), ("PNG", "png", "image/png"), ("WEBP", "webp", "image/webp"),
    ("GIF", "gif", "image/gif"), ("BMP", "bmp", "image/bmp"), ("TIFF", "tif", "image/tiff"),
    ("MPO", "jpg", "image/jpeg"),
])
def test_type_comes_from_the_decoded_format(fmt, ext, content_type):
    data = image_bytes(fmt)
    kind = check_image(data, "anything.html").type
    assert (kind.extension, kind.content_type) == (ext, content_type)
    stream = io.BytesIO(data)
    stream.seek(3)
    assert detect_type(stream) == kind and stream.tell() == 3  # position restored


@pytest.mark.parametrize("data", [SVG, HTML_PAYLOAD, b"", b"\xff\xd8\xff", b"GIF89a<script>"])
def test_non_images_have_no_type(data):
    assert detect_type(io.BytesIO(data)) is None


def test_only_image_types_are_ever_served():
    assert all(t.content_type.startswith("image/") for t in IMAGE_TYPES.values())
    assert {t.extension for t in IMAGE_TYPES.values()} <= {"jpg", "png", "webp", "gif", "bmp", "tif"}


def _get_image(client, item):
    r = client.get(reverse("items:image", args=[item.pk]))
    body = b"".join(r.streaming_content) if r.status_code == 200 else b""
    return r, body


@pytest.mark.parametrize("name", ["evil.html", "evil.svg", "evil.xhtml", "evil", "evil.htm.jpg"])
def test_upload_named_as_markup_is_stored_and_served_as_its_image_type(
    name, client, make_user, project_factory
):
    lead = make_user("lead")
    project = project_factory(lead=lead)
    client.force_login(lead)
    data = evil_jpeg((10, 20, 30))
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(name, data, content_type="text/html")
    r = client.post(reverse("projects:detail", args=[project.pk]), {"files": [upload]})
    assert r.status_code == 200
    item = Item.objects.get(project=project)
    assert item.original_name == name
    assert item.image.name.endswith(f"/{item.sha256}.jpg")
    r, body = _get_image(client, item)
    assert r.status_code == 200 and body == data
    assert r["Content-Type"] == "image/jpeg"
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Disposition"] == f'inline; filename="item-{item.pk}.jpg"'
    # The export names the file for what it is too.
    assert exports.Naming(project).file_for(item).endswith(".jpg")


def _stored_the_old_way(project, name: str, data: bytes, ext: str) -> Item:
    """An item as the importer stored it before: the extension from the client's name."""
    item = Importer(project).add(name, jpeg_bytes((len(data) % 256, 1, 1)))
    old = f"{item.image.name.rsplit('.', 1)[0]}.{ext}"
    (Path(settings.MEDIA_ROOT) / item.image.name).unlink()
    (Path(settings.MEDIA_ROOT) / old).write_bytes(data)
    Item.objects.filter(pk=item.pk).update(image=old)
    item.refresh_from_db()
    return item


def test_files_stored_before_are_served_by_content_or_refused(client, make_user, project_factory):
    lead = make_user("lead")
    project = project_factory(lead=lead)
    client.force_login(lead)
    disguised = _stored_the_old_way(project, "evil.html", evil_jpeg((1, 2, 3)), "html")
    r, _ = _get_image(client, disguised)
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    # A stored file that is no image at all (not importable today) is never served.
    svg = _stored_the_old_way(project, "evil.svg", SVG, "svg")
    r, body = _get_image(client, svg)
    assert r.status_code == 404 and b"<script>" not in r.content

    # The data migration renames what decodes as an image, and leaves the rest to the refusal.
    migration = importlib.import_module("labeler.items.migrations.0002_image_names_from_content")
    migration.rename_by_content(django_apps, None)
    disguised.refresh_from_db()
    svg.refresh_from_db()
    assert disguised.image.name.endswith(".jpg")
    assert (Path(settings.MEDIA_ROOT) / disguised.image.name).read_bytes().endswith(HTML_PAYLOAD)
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.html"))
    assert svg.image.name.endswith(".svg")
    r, _ = _get_image(client, disguised)
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"


def test_thumbnail_is_a_jpeg_inline(client, make_user, project_factory):
    lead = make_user("lead")
    project = project_factory(lead=lead)
    item = Importer(project).add("evil.svg", evil_jpeg((5, 5, 5)))
    client.force_login(lead)
    r = client.get(reverse("insights:thumb", args=[item.pk]))
    body = b"".join(r.streaming_content)
    assert r["Content-Type"] == "image/jpeg" and r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Disposition"].startswith("inline;")
    assert body.startswith(b"\xff\xd8") and HTML_PAYLOAD not in body
