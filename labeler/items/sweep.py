"""Remove media files no item references: images of imports that never committed (a process
killed mid-upload: its rows rolled back, its files stayed) and of deleted items or projects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage

from .models import Item

# Files younger than this may belong to an import still in progress (rows not yet committed).
DEFAULT_MIN_AGE_SECONDS = 3600


def _project_files(folder: Path) -> Iterator[tuple[int | None, Path]]:
    """(project id or None if the folder is not a number, file) under MEDIA_ROOT/<folder>/."""
    if not folder.is_dir():
        return
    for project_dir in folder.iterdir():
        project_id = int(project_dir.name) if project_dir.name.isdigit() else None
        for path in project_dir.rglob("*") if project_dir.is_dir() else [project_dir]:
            if path.is_file():
                yield project_id, path


def _bucket_files(prefix: str) -> Iterator[tuple[int | None, str, float]]:
    """(project id or None, storage name, mtime) of the stored images in the bucket, listed
    page by page (django-storages' S3Storage: its boto3 bucket under its location)."""
    root = f"{default_storage.location.rstrip('/')}/" if default_storage.location else ""
    for obj in default_storage.bucket.objects.filter(Prefix=root + prefix):
        name = obj.key[len(root):]
        folder = name[len(prefix):].split("/", 1)[0]
        yield (int(folder) if folder.isdigit() else None), name, obj.last_modified.timestamp()


def orphan_files(min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS) -> list[Path | str]:
    """Images under items/ (on disk or in the bucket) whose name no Item has, and thumbnails of
    images no Item has. Images an item only references (--no-copy) are never listed here."""
    media = Path(settings.MEDIA_ROOT)
    cutoff = time.time() - min_age_seconds
    names: dict[int, set[str]] = {}
    shas: dict[int, set[str]] = {}

    def known(project_id: int) -> tuple[set[str], set[str]]:
        if project_id not in names:
            rows = Item.objects.filter(project_id=project_id).values_list("image", "sha256")
            names[project_id] = {name for name, _ in rows}
            shas[project_id] = {sha for _, sha in rows}
        return names[project_id], shas[project_id]

    orphans: list[Path | str] = []
    if isinstance(default_storage, FileSystemStorage):
        stored = ((project_id, path.relative_to(media).as_posix(), path.stat().st_mtime, path)
                  for project_id, path in _project_files(media / "items"))
    else:  # in a bucket: orphans are storage names, deleted through the storage
        stored = ((project_id, name, mtime, name)
                  for project_id, name, mtime in _bucket_files("items/"))
    for project_id, name, mtime, handle in stored:
        if mtime > cutoff:
            continue
        if project_id is None or name not in known(project_id)[0]:
            orphans.append(handle)
    for project_id, path in _project_files(media / "thumbs"):
        if path.stat().st_mtime > cutoff:
            continue
        if project_id is None or path.stem not in known(project_id)[1]:
            orphans.append(path)
    return orphans


def sweep_media(min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS, *,
                dry_run: bool = False) -> list[Path | str]:
    """Delete (unless dry_run) and return the orphan files (paths, or names in the bucket)."""
    orphans = orphan_files(min_age_seconds)
    if not dry_run:
        for orphan in orphans:
            if isinstance(orphan, Path):
                orphan.unlink(missing_ok=True)
            else:
                default_storage.delete(orphan)
    return orphans
