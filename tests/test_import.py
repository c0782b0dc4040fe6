"""Import from folders, browser uploads and zips: duplicates skipped, bad files reported."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image

from labeler.annotations.models import Annotation, Source
from labeler.items.importing import import_folder, import_uploads
from labeler.items.validation import InvalidUpload, check_image, safe_member_name

from .conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_folder_import_with_labels_duplicates_and_errors(tmp_path, project_factory):
    tmp_path = tmp_path / "src"
    project = project_factory(classes=["red"])
    write(tmp_path / "red" / "a.jpg", jpeg_bytes((250, 0, 0)))
    write(tmp_path / "red" / "copy-of-a.jpg", jpeg_bytes((250, 0, 0)))
    write(tmp_path / "green" / "b.jpg", jpeg_bytes((0, 250, 0)))
    write(tmp_path / "green" / "broken.jpg", jpeg_bytes((0, 0, 250))[:200])
    write(tmp_path / "green" / "notes.png", b"this is not an image")
    report = import_folder(project, tmp_path, labels_from_folders=True)
    assert len(report.created) == 2
    assert report.labeled == 2
    assert len(report.duplicates) == 1
    assert set(report.errors) == {"green/broken.jpg", "green/notes.png"}
    assert "corrupt or truncated" in report.errors["green/broken.jpg"]
    assert "not an image" in report.errors["green/notes.png"]
    assert sorted(project.classes.values_list("name", flat=True)) == ["green", "red"]
    labels = dict(Annotation.objects.values_list("item__original_name", "label__name"))
    assert labels == {"red/a.jpg": "red", "green/b.jpg": "green"}
    assert set(Annotation.objects.values_list("source", flat=True)) == {Source.IMPORT}
    item = project.items.get(original_name="red/a.jpg")
    assert (item.width, item.height, item.annotation_count) == (64, 48, 1)
    # Importing again skips everything as duplicates.
    again = import_folder(project, tmp_path)
    assert not again.created and len(again.duplicates) == 3


def test_import_command(tmp_path, project_factory, capsys):
    tmp_path = tmp_path / "src"
    project = project_factory("Cmd")
    write(tmp_path / "x.jpg", jpeg_bytes((1, 1, 1)))
    write(tmp_path / "y.jpg", b"garbage")
    call_command("import_images", "Cmd", str(tmp_path))
    out = capsys.readouterr()
    assert "1 imported" in out.out and "1 errors" in out.out
    assert "y.jpg" in out.err
    assert project.items.count() == 1


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_upload_rejects_traversal_and_bombs(project_factory, settings):
    project = project_factory()
    archive = make_zip({
        "ok/one.jpg": jpeg_bytes((5, 5, 5)),
        "../evil.jpg": jpeg_bytes((6, 6, 6)),
        "/abs.jpg": jpeg_bytes((7, 7, 7)),
        "bomb.png": b"\0" * 5_000_000,  # compresses ~1000:1
        "readme.txt": b"ignored",
    })
    upload = SimpleUploadedFile("batch.zip", archive, content_type="application/zip")
    report = import_uploads(project, [upload])
    assert len(report.created) == 1
    errors = report.errors
    assert "unsafe path" in errors["batch.zip:../evil.jpg"]
    assert "unsafe path" in errors["batch.zip:/abs.jpg"]
    assert "zip bomb" in errors["batch.zip:bomb.png"]
    assert project.items.get().original_name == "batch.zip:ok/one.jpg"


def test_zip_too_large_as_a_whole(project_factory, settings):
    settings.LABELER_MAX_UPLOAD_BYTES = 1000
    project = project_factory()
    archive = make_zip({"a.jpg": jpeg_bytes((1, 2, 3), (200, 200))}, zipfile.ZIP_STORED)
    report = import_uploads(project, [SimpleUploadedFile("big.zip", archive)])
    assert not report.created and "limit" in next(iter(report.errors.values()))


def test_decompression_bomb_image_refused(settings):
    settings.LABELER_MAX_IMAGE_PIXELS = 1_000_000
    buf = io.BytesIO()
    Image.new("1", (4000, 4000)).save(buf, format="PNG")  # 16 MP in a few kB
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(InvalidUpload, match="megapixels|bomb"):
        check_image(buf.getvalue())


def test_oversize_file_refused(settings):
    settings.LABELER_MAX_IMAGE_BYTES = 100
    with pytest.raises(InvalidUpload, match="limit"):
        check_image(jpeg_bytes((1, 2, 3)))


@pytest.mark.parametrize(
    "name,ok", [("a/b.jpg", True), ("../x.jpg", False), ("/x.jpg", False), ("a\\b.jpg", False),
                ("C:/x.jpg", False), ("a//b.jpg", True)],
)
def test_safe_member_name(name, ok):
    assert (safe_member_name(name) is not None) == ok
