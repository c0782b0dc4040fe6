"""Remove media files no item references: images of imports that never committed (a process
killed mid-upload: its rows rolled back, its files stayed) and of deleted items or projects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

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


def orphan_files(min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS) -> list[Path]:
    """Images under items/ whose name no Item has, and thumbnails of images no Item has."""
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

    orphans = []
    for project_id, path in _project_files(media / "items"):
        if path.stat().st_mtime > cutoff:
            continue
        name = path.relative_to(media).as_posix()
        if project_id is None or name not in known(project_id)[0]:
            orphans.append(path)
    for project_id, path in _project_files(media / "thumbs"):
        if path.stat().st_mtime > cutoff:
            continue
        if project_id is None or path.stem not in known(project_id)[1]:
            orphans.append(path)
    return orphans


def sweep_media(min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS, *, dry_run: bool = False) -> list[Path]:
    """Delete (unless dry_run) and return the orphan files."""
    orphans = orphan_files(min_age_seconds)
    if not dry_run:
        for path in orphans:
            path.unlink(missing_ok=True)
    return orphans
