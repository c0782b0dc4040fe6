"""Item images in an S3-compatible bucket (a real moto server, tests/s3_server.py): uploads land
in the bucket under the prefix, members get them streamed with the type of their decoded
content, others get nothing, and the bucket is never made public."""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from labeler.items.services import delete_item
from labeler.projects.models import Role
from labeler.projects.services import set_member

from .conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 200, 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_lands_in_the_bucket_and_is_streamed_to_members_only(
        s3_storage, client, make_user, project_factory, tmp_path,
        django_capture_on_commit_callbacks):
    server, bucket, _ = s3_storage
    project = project_factory()
    lead, stranger = make_user("lead"), make_user("stranger")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    # A PNG named .jpg and a JPEG named .html: the stored and served types are the content's.
    files = [SimpleUploadedFile("photo.jpg", png_bytes(), content_type="image/jpeg"),
             SimpleUploadedFile("evil.html", jpeg_bytes((9, 9, 9)), content_type="text/html")]
    response = client.post(reverse("projects:detail", args=[project.pk]), {"files": files})
    assert response.status_code == 200
    png_item = project.items.get(original_name="photo.jpg")
    jpeg_item = project.items.get(original_name="evil.html")
    keys = server.keys(bucket)
    assert f"run/media/{png_item.image.name}" in keys
    assert f"run/media/{jpeg_item.image.name}" in keys
    assert png_item.image.name.endswith(".png") and jpeg_item.image.name.endswith(".jpg")
    assert not any((tmp_path / "media").rglob("items/*/*/*")), "nothing on the local disk"

    for item, kind, magic in ((png_item, "image/png", b"\x89PNG"),
                              (jpeg_item, "image/jpeg", b"\xff\xd8")):
        got = client.get(reverse("items:image", args=[item.pk]))
        assert got.status_code == 200
        assert got["Content-Type"] == kind
        assert got["X-Content-Type-Options"] == "nosniff"
        assert b"".join(got.streaming_content)[:4].startswith(magic)
        thumb = client.get(reverse("insights:thumb", args=[item.pk]))
        assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"

    client.force_login(stranger)
    assert client.get(reverse("items:image", args=[png_item.pk])).status_code == 404
    client.logout()
    assert client.get(reverse("items:image", args=[png_item.pk])).status_code == 302

    # The bucket is private: no ACL grants anyone but the owner, an unsigned GET is refused.
    s3 = server.client()
    key = f"run/media/{png_item.image.name}"
    grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    assert all("URI" not in g["Grantee"] for g in grants), grants
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.endpoint}/{bucket}/{key}")
    assert refused.value.code == 403

    # Any URL of the storage is signed and short-lived (the pages never hand one out).
    signed = png_item.image.url
    assert "X-Amz-Signature=" in signed and "X-Amz-Expires=300" in signed

    # Deleting an item deletes its stored copy (after commit).
    with django_capture_on_commit_callbacks(execute=True):
        delete_item(jpeg_item)
    assert f"run/media/{jpeg_item.image.name}" not in server.keys(bucket)


def test_missing_object_is_a_404(s3_storage, client, make_user, project_factory, add_images):
    server, bucket, _ = s3_storage
    project = project_factory()
    item = add_images(project, 1)[0]
    server.client().delete_object(Bucket=bucket, Key=f"run/media/{item.image.name}")
    user = make_user("lead")
    set_member(project, user, Role.LEAD)
    client.force_login(user)
    assert client.get(reverse("items:image", args=[item.pk])).status_code == 404
    assert client.get(reverse("insights:thumb", args=[item.pk])).status_code == 404


def test_storage_settings_from_the_environment():
    from labeler.storage_settings import default_storage_backend, media_location

    local = default_storage_backend("/srv/labeler")
    assert local["BACKEND"].endswith("FileSystemStorage")
    s3 = default_storage_backend("s3://team-bucket/labeler/prod")
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    options = s3["OPTIONS"]
    assert (options["bucket_name"], options["location"]) == ("team-bucket", "labeler/prod/media")
    assert options["default_acl"] is None and options["querystring_auth"] is True
    assert options["querystring_expire"] <= 3600
    assert media_location("s3://b/p", "/x") == "s3://b/p/media"
    assert media_location("/srv/labeler", "/srv/media") == "/srv/media"
