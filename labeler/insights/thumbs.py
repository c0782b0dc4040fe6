"""Small JPEG thumbnails (longest side <= 256 px) for the map's hover and the label-error list.

Made on first request and cached on disk under MEDIA_ROOT/thumbs/<project>/<sha[:2]>/<sha>.jpg;
the originals are content-addressed, so a thumbnail never goes stale.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO

from django.conf import settings
from PIL import Image, ImageOps

from labeler.items.models import Item
from labeler.items.sources import local_path, open_image

SIZE = 256
QUALITY = 82


def thumb_path(item: Item) -> Path:
    return (Path(settings.MEDIA_ROOT) / "thumbs" / str(item.project_id) / item.sha256[:2]
            / f"{item.sha256}.jpg")


def make_thumb(source: Path | IO[bytes], target: Path, size: int = SIZE) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at reduced scale (cheap)
        img = ImageOps.exif_transpose(img)
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        if img.mode not in ("RGB", "L"):
            background = Image.new("RGB", img.size, (255, 255, 255))
            rgba = img.convert("RGBA")
            background.paste(rgba, mask=rgba.getchannel("A"))
            img = background
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            img.save(tmp, "JPEG", quality=QUALITY, optimize=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def thumbnail_for(item: Item) -> Path:
    """The cached thumbnail of an item, made now if needed. FileNotFoundError if no original."""
    target = thumb_path(item)
    if target.is_file():
        return target
    source = local_path(item.image.name, item.source)
    if source is None:  # in the bucket or referenced (--no-copy): ImageUnavailable if missing
        with open_image(item.image.name, item.source) as handle:
            return make_thumb(handle, target)
    if not source.is_file():
        raise FileNotFoundError(source)
    return make_thumb(source, target)
