"""Reading an item's image on the web side, wherever it lives: the stored copy (MEDIA_ROOT or the
bucket, through Django's default storage) or, for an item imported with --no-copy, the source
object (``s3://bucket/key``, through worker.storage) or URL (``https://...``, through the SSRF
guard on every read, redirects included). Serving, thumbnails and exports all come through here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage

from labeler.net_safety import FetchError, UnsafeURL, fetch
from worker import storage


class ImageUnavailable(FileNotFoundError):
    """The image cannot be read now (missing object, refused or failing URL); says why."""


def local_path(image_name: str, source: str = "") -> Path | None:
    """The stored file on this machine's disk, when there is one (fast paths: zip a file)."""
    if source or not image_name or not isinstance(default_storage, FileSystemStorage):
        return None
    return Path(default_storage.path(image_name))


def read_source(source: str) -> bytes:
    """The bytes of a referenced image (s3:// object or http(s) URL)."""
    try:
        if source.startswith(("http://", "https://")):
            got = fetch(source, max_bytes=settings.LABELER_MAX_IMAGE_BYTES)
            if got.status != 200:
                raise ImageUnavailable(f"{source}: the server answered HTTP {got.status}")
            return got.body
        return storage.read_bytes(source)
    except (UnsafeURL, FetchError) as exc:
        raise ImageUnavailable(str(exc)) from exc
    except FileNotFoundError as exc:
        raise ImageUnavailable(f"{source} is missing") from exc
    except OSError as exc:  # an object store's error (access denied, no such bucket)
        raise ImageUnavailable(f"{source}: {exc}") from exc


def open_image(image_name: str, source: str = "") -> IO[bytes]:
    """A readable, seekable file of the image; ImageUnavailable when there is none."""
    if source:
        return io.BytesIO(read_source(source))
    if not image_name:
        raise ImageUnavailable("the item has no image")
    try:
        return default_storage.open(image_name, "rb")
    except FileNotFoundError as exc:
        raise ImageUnavailable(f"{image_name} is missing") from exc
    except OSError as exc:
        raise ImageUnavailable(f"{image_name}: {exc}") from exc


def read_image(image_name: str, source: str = "") -> bytes:
    with open_image(image_name, source) as handle:
        return handle.read()
