"""Upload validation: every image and archive is checked before anything is stored.

Defends against oversize files, non-images, truncated images, decompression bombs (huge pixel
counts in small files), zip bombs (extreme compression ratios, too many members) and archive
paths that try to escape (``../``, absolute paths).
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from django.conf import settings
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageType:
    """How a decoded format is stored and served: never taken from the client's file name."""

    extension: str
    content_type: str


# Pillow format name -> stored extension and served type. Only these are imported or served.
IMAGE_TYPES = {
    "JPEG": ImageType("jpg", "image/jpeg"),
    "MPO": ImageType("jpg", "image/jpeg"),  # multi-picture JPEG (cameras): a JPEG to browsers
    "PNG": ImageType("png", "image/png"),
    "WEBP": ImageType("webp", "image/webp"),
    "GIF": ImageType("gif", "image/gif"),
    "BMP": ImageType("bmp", "image/bmp"),
    "TIFF": ImageType("tif", "image/tiff"),
}
IMAGE_FORMATS = set(IMAGE_TYPES)
_DECODERS = sorted(IMAGE_FORMATS - {"MPO"})  # Pillow opens MPO files with its JPEG decoder


class InvalidUpload(ValueError):
    """A file or archive that must not be imported; the message says why, for the user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def type(self) -> ImageType:
        return IMAGE_TYPES[self.format]


def detect_type(fileobj: BinaryIO) -> ImageType | None:
    """The type of a stored image from its first bytes (Pillow reads only the header), or None
    when it is none of IMAGE_TYPES. The file position is restored, so it can be served next."""
    start = fileobj.tell()
    try:
        with Image.open(fileobj, formats=_DECODERS) as img:
            return IMAGE_TYPES.get(img.format or "")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    finally:
        fileobj.seek(start)


def check_image(data: bytes, name: str = "") -> ImageInfo:
    """Decode enough of the image to know it is real, whole and not a bomb."""
    max_bytes = settings.LABELER_MAX_IMAGE_BYTES
    if len(data) > max_bytes:
        raise InvalidUpload(f"file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not data:
        raise InvalidUpload("file is empty")
    max_pixels = settings.LABELER_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x MAX_IMAGE_PIXELS; treat that as an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
                if fmt not in IMAGE_FORMATS:
                    raise InvalidUpload(f"unsupported image format {fmt or 'unknown'}")
                if width * height > max_pixels:
                    raise InvalidUpload(
                        f"image is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
                        f"the limit is {max_pixels / 1e6:.0f} (decompression bomb guard)"
                    )
                img.verify()
            with Image.open(io.BytesIO(data)) as img:
                # A reduced-size decode (draft) catches truncated data cheaply.
                img.draft("RGB", (64, 64))
                img.load()
    except InvalidUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidUpload(f"decompression bomb refused: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidUpload("not an image (or an unsupported format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidUpload(f"corrupt or truncated image: {exc}") from exc
    return ImageInfo(fmt, width, height)


def safe_member_name(name: str) -> str | None:
    """The member's path if it is a plain relative path inside the archive, else None."""
    if "\\" in name or name.startswith("/") or ":" in name.split("/")[0]:
        return None
    parts = PurePosixPath(name).parts
    if any(p in ("..", "") for p in parts):
        return None
    return name


def is_image_name(name: str) -> bool:
    base = PurePosixPath(name).name
    return not base.startswith(".") and PurePosixPath(base).suffix.lower() in IMAGE_EXTENSIONS


def iter_zip_images(fileobj: BinaryIO) -> Iterator[tuple[str, bytes | InvalidUpload]]:
    """Yield (member name, bytes) for each image in a zip, or (name, InvalidUpload) per bad member.

    Raises InvalidUpload for an archive that is not a zip or is a bomb as a whole.
    """
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise InvalidUpload("not a valid .zip archive") from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > settings.LABELER_MAX_ZIP_MEMBERS:
            raise InvalidUpload(
                f"archive has {len(members)} files; the limit is {settings.LABELER_MAX_ZIP_MEMBERS}"
            )
        total = sum(m.file_size for m in members)
        if total > settings.LABELER_MAX_UPLOAD_BYTES:
            raise InvalidUpload(
                f"archive expands to {total / 1e6:.0f} MB; the limit is "
                f"{settings.LABELER_MAX_UPLOAD_BYTES / 1e6:.0f} MB (zip bomb guard)"
            )
        for member in members:
            name = member.filename
            if name.startswith("__MACOSX/") or not is_image_name(name):
                continue
            if safe_member_name(name) is None:
                yield name, InvalidUpload("unsafe path in archive (absolute or '..')")
                continue
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > settings.LABELER_MAX_ZIP_RATIO:
                yield name, InvalidUpload(f"compression ratio {ratio:.0f}:1 refused (zip bomb guard)")
                continue
            if member.file_size > settings.LABELER_MAX_IMAGE_BYTES:
                yield name, InvalidUpload("file in archive is over the image size limit")
                continue
            with archive.open(member) as fh:
                # Read at most the declared size + 1: a lying header can't inflate past it.
                data = fh.read(member.file_size + 1)
            if len(data) > member.file_size:
                yield name, InvalidUpload("archive member larger than declared (zip bomb guard)")
                continue
            yield name, data
