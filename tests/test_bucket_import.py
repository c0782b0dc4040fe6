"""Import every image under an S3 prefix (manage.py import_images PROJECT s3://bucket/prefix/)
from a real S3-compatible server: copies or references (--no-copy), labels from folders,
non-images reported, a missing bucket refused; GPU workers read the images from the bucket."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeler.insights.exports import export_folders
from labeler.items.services import delete_item
from labeler.projects.models import Role
from labeler.projects.services import set_member
from labeler.training.stores import image_location
from worker import storage

from .conftest import dataset_or_skip, jpeg_bytes

pytestmark = pytest.mark.django_db


def fill(server, bucket: str) -> dict[str, bytes]:
    files = {
        "photos/red/a.jpg": jpeg_bytes((250, 0, 0)),
        "photos/red/b.jpg": jpeg_bytes((240, 10, 0)),
        "photos/blue/c.jpg": jpeg_bytes((0, 0, 250)),
        "photos/blue/copy-of-c.jpg": jpeg_bytes((0, 0, 250)),
        "photos/loose.jpg": jpeg_bytes((9, 99, 9)),
        "photos/red/broken.jpg": jpeg_bytes((1, 2, 3))[:150],
        "photos/README.txt": b"not an image",
        "photos/blue/labels.json": b"{}",
        "elsewhere/z.jpg": jpeg_bytes((50, 50, 50)),
    }
    server.put_files(bucket, files)
    return files


def test_copy_with_labels_from_folders(s3_bucket, project_factory, capsys, settings):
    server, bucket = s3_bucket
    fill(server, bucket)
    project = project_factory("Bucket", classes=["red"])
    call_command("import_images", "Bucket", f"s3://{bucket}/photos/", "--labels-from-folders")
    out = capsys.readouterr()
    assert "4 imported, 3 with labels, 1 duplicates skipped, 2 non-images skipped, 1 errors" \
        in out.out, out
    assert "not an image  README.txt" in out.err and "blue/labels.json" in out.err
    assert "red/broken.jpg" in out.err
    names = dict(project.items.values_list("original_name", "current_label__name"))
    assert names == {"red/a.jpg": "red", "red/b.jpg": "red", "blue/c.jpg": "blue",
                     "loose.jpg": None}
    for item in project.items.all():  # copies in this deployment's storage (local here)
        assert not item.source and (settings.MEDIA_ROOT / item.image.name).is_file()
    # Again: every image is a duplicate now, nothing new.
    call_command("import_images", "Bucket", f"s3://{bucket}/photos")
    assert "0 imported, 5 duplicates skipped" in capsys.readouterr().out


def test_no_copy_items_reference_the_objects(s3_bucket, project_factory, client, make_user,
                                             tmp_path, django_capture_on_commit_callbacks):
    server, bucket = s3_bucket
    files = fill(server, bucket)
    project = project_factory("Ref", classes=["red"])
    call_command("import_images", "Ref", f"s3://{bucket}/photos/red", "--no-copy",
                 "--labels-from-folders")
    items = {i.original_name: i for i in project.items.all()}
    assert set(items) == {"a.jpg", "b.jpg"}  # directly under the prefix: no folder, no label
    a = items["a.jpg"]
    assert a.source == f"s3://{bucket}/photos/red/a.jpg" and not a.image.name
    assert not any((tmp_path / "media").rglob("*.jpg")), "nothing copied"
    assert image_location(a.image.name, a.source) == a.source
    assert storage.read_bytes(a.source) == files["photos/red/a.jpg"]  # as a GPU worker reads it

    lead = make_user("lead")
    set_member(project, lead, Role.LEAD)
    client.force_login(lead)
    got = client.get(reverse("items:image", args=[a.pk]))
    assert got.status_code == 200 and got["Content-Type"] == "image/jpeg"
    assert b"".join(got.streaming_content) == files["photos/red/a.jpg"]
    assert client.get(reverse("insights:thumb", args=[a.pk]))["Content-Type"] == "image/jpeg"

    from labeler.annotations.services import save_annotation
    save_annotation(a, project.classes.get(name="red"), lead)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(export_folders(project))))
    assert archive.read("red/a.jpg") == files["photos/red/a.jpg"]

    # Deleting the item leaves the source object alone (it belongs to the user's bucket).
    with django_capture_on_commit_callbacks(execute=True):
        delete_item(a)
    assert "photos/red/a.jpg" in server.keys(bucket)
    # A source object deleted outside labeler: the item's image is a 404, not a 500.
    server.client().delete_object(Bucket=bucket, Key="photos/red/b.jpg")
    assert client.get(reverse("items:image", args=[items["b.jpg"].pk])).status_code == 404


def test_bad_bucket_input_is_refused(s3_bucket, project_factory):
    server, bucket = s3_bucket
    project = project_factory("Nope")
    with pytest.raises(CommandError, match="no bucket named 'no-such-bucket'"):
        call_command("import_images", "Nope", "s3://no-such-bucket/x/")
    with pytest.raises(CommandError, match="not an s3://bucket/prefix"):
        call_command("import_images", "Nope", "s3:///x")
    with pytest.raises(CommandError, match="--no-copy works with s3://"):
        call_command("import_images", "Nope", "/some/folder", "--no-copy")
    assert project.items.count() == 0


def test_listing_is_streamed_in_pages(s3_bucket, project_factory, monkeypatch):
    """Over a thousand objects: several listing pages, imported in bounded batches."""
    from labeler.items import remote_import

    server, bucket = s3_bucket
    client = server.client()
    for i in range(1005):
        client.put_object(Bucket=bucket, Key=f"many/{i:05d}.txt", Body=b"x")
    server.put_files(bucket, {f"many/z{i}.jpg": jpeg_bytes((i * 50, 7, 200)) for i in range(5)})
    batches = []
    real = remote_import._batches
    monkeypatch.setattr(remote_import, "_batches",
                        lambda rows, size=3: (batches.append(b) or b for b in real(rows, 3)))
    monkeypatch.setattr(remote_import, "KEEP", 2)
    project = project_factory("Many")
    report = remote_import.import_bucket(project, f"s3://{bucket}/many")
    # Bounded reports: a sample of ids and names, exact counts.
    assert report.n_created == 5 and len(report.created) == 2 and project.items.count() == 5
    assert report.not_images == 1005 and len(report.not_image_names) == 100
    assert report.summary().startswith("5 imported")
    assert [len(b) for b in batches] == [3, 2]
    again = remote_import.import_bucket(project, f"s3://{bucket}/many")
    assert again.n_duplicates == 5 and len(again.duplicates) == 2 and not again.n_created


def test_worker_embeds_real_images_from_the_bucket(s3_storage, project_factory):
    """20 real photos in the bucket (10 stored copies, 10 referenced): the GPU worker's code
    reads them over the S3 API and writes the embeddings to the bucket too."""
    from worker.compute import embed_items

    server, bucket, url = s3_storage
    root = dataset_or_skip() / "train"
    photos = sorted(p for cls in sorted(root.iterdir())[:2] for p in sorted(cls.iterdir())[:10])
    server.put_files(bucket, {f"incoming/{p.parent.name}/{p.name}": p.read_bytes()
                              for p in photos})
    project = project_factory("Real", classes=[])
    call_command("import_images", "Real", f"s3://{bucket}/incoming/{photos[0].parent.name}/")
    call_command("import_images", "Real", f"s3://{bucket}/incoming/{photos[-1].parent.name}/",
                 "--no-copy")
    rows = list(project.items.order_by("pk").values_list("pk", "image", "source"))
    assert len(rows) == 20 and sum(bool(s) for _, _, s in rows) == 10
    images = [image_location(name, source) for _, name, source in rows]
    assert all(i.startswith(f"s3://{bucket}/") for i in images)
    from django.conf import settings
    store = f"{settings.EMBEDDINGS_ROOT}/{project.pk}/{project.backbone}"
    result = embed_items(store, project.backbone, [pk for pk, _, _ in rows], images)
    assert result["embedded"] == 20 and not result["errors"]
    from worker.ml.embedding_store import EmbeddingStore
    ids, matrix = EmbeddingStore(store).load()
    assert sorted(ids.tolist()) == [pk for pk, _, _ in rows]
    assert np.isfinite(np.asarray(matrix)).all() and np.asarray(matrix).std() > 0
    assert any(k.startswith(f"run/embeddings/{project.pk}/") for k in server.keys(bucket))
