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


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gpu_worker_embeds_from_the_bucket_with_only_broker_and_s3(
        s3_storage, worker_factory, project_factory, add_images):
    """A GPU worker as on another machine (no settings, no database, no shared folder: only
    the broker URL and the S3 variables) embeds stored and referenced images from the bucket
    and writes the embeddings there; the cold-start ranking follows."""
    from django.core.management import call_command

    from labeler.items.models import UNRANKED, Item
    from labeler.training.models import Job
    from labeler.training.services import request_embedding

    from .conftest import embedding_done, last_job, wait_for

    server, bucket, _ = s3_storage
    server.put_files(bucket, {f"src/{i}.jpg": jpeg_bytes((i * 60, 200, 30)) for i in range(3)})
    _, gpu_log = worker_factory(app="worker.celery_app", queues="gpu", concurrency=1,
                                django=False)
    worker_factory(queues="web", concurrency=1)
    project = project_factory("Remote")
    add_images(project, 4)  # uploads: stored in the bucket
    call_command("import_images", str(project.pk), f"s3://{bucket}/src/", "--no-copy")
    assert Item.objects.filter(project=project).exclude(source="").count() == 3
    request_embedding(project)
    wait_for(lambda: embedding_done(project.pk, 7), 240, 0.5, "the GPU worker to embed")
    wait_for(lambda: (last_job(project.pk, Job.Kind.RETRAIN) or Job()).status == "done", 120,
             0.5, "the cold-start ranking")
    assert not Item.objects.filter(project=project).exclude(embed_error="").exists()
    assert Item.objects.filter(project=project, query_rank__lt=UNRANKED).count() == 7
    assert any(k.startswith(f"run/embeddings/{project.pk}/") for k in server.keys(bucket))
    assert "worker.tasks.embed_chunk" in gpu_log.read_text()


def test_sweep_media_removes_orphans_in_the_bucket(s3_storage, project_factory, add_images,
                                                   capsys):
    """Objects no item references (a deleted row, a killed import's leftovers) are swept from
    the bucket; referenced copies and objects outside the media prefix stay."""
    from django.core.management import call_command

    from labeler.items.models import Item

    server, bucket, _ = s3_storage
    project = project_factory()
    kept, gone = add_images(project, 2)
    Item.objects.filter(pk=gone.pk).delete()  # the row only: its object stays behind
    server.put_files(bucket, {f"run/media/items/{project.pk}/zz/stray.jpg": b"x",
                              "run/media/items/not-a-project/y.jpg": b"y",
                              "src/user-photo.jpg": b"z"})
    call_command("sweep_media", "--min-age", "3600")
    assert "removed 0 orphan" in capsys.readouterr().out  # all younger than an hour
    call_command("sweep_media", "--min-age", "0")
    assert "removed 3 orphan" in capsys.readouterr().out
    assert server.keys(bucket) == sorted([f"run/media/{kept.image.name}",
                                          "src/user-photo.jpg"])
