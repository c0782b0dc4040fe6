"""Import images into a project: from a folder, from browser uploads, from zip archives.

One code path for all three, so the same checks and the same de-duplication apply everywhere.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from labeler.net_safety import FetchError, UnsafeURL, fetch
from labeler.projects.models import Project
from labeler.training.services import request_embedding, request_retrain_if_due

from .models import Item
from .validation import InvalidUpload, check_image, is_image_name, iter_zip_images

logger = logging.getLogger("labeler.import")


@dataclass
class ImportReport:
    created: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    labeled: int = 0
    # Files that are not images by name (a bucket's other objects): counted, a few named.
    not_images: int = 0
    not_image_names: list[str] = field(default_factory=list)

    # Streamed imports (a bucket, a CSV) keep only the first ids and names (trim): the rest
    # are counted here, so a million-object import reports exact counts in bounded memory.
    more_created: int = 0
    more_duplicates: int = 0
    more_errors: int = 0

    def skip_not_image(self, name: str) -> None:
        self.not_images += 1
        if len(self.not_image_names) < 100:
            self.not_image_names.append(name)

    def trim(self, keep: int) -> None:
        """Keep the first `keep` created ids, duplicate names and errors; count the rest."""
        if len(self.created) > keep:
            self.more_created += len(self.created) - keep
            del self.created[keep:]
        if len(self.duplicates) > keep:
            self.more_duplicates += len(self.duplicates) - keep
            del self.duplicates[keep:]
        for name in list(self.errors)[keep:]:
            del self.errors[name]
            self.more_errors += 1

    @property
    def n_created(self) -> int:
        return len(self.created) + self.more_created

    @property
    def n_duplicates(self) -> int:
        return len(self.duplicates) + self.more_duplicates

    @property
    def n_errors(self) -> int:
        return len(self.errors) + self.more_errors

    def summary(self) -> str:
        parts = [f"{self.n_created} imported"]
        if self.labeled:
            parts.append(f"{self.labeled} with labels")
        parts.append(f"{self.n_duplicates} duplicates skipped")
        if self.not_images:
            parts.append(f"{self.not_images} non-images skipped")
        parts.append(f"{self.n_errors} errors")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "created": self.n_created,
            "labeled": self.labeled,
            "duplicates": self.duplicates,
            "errors": self.errors,
        }


class Importer:
    """Adds images to one project; collects a per-file report instead of stopping on bad files."""

    def __init__(self, project: Project, *, user: AbstractBaseUser | None = None) -> None:
        self.project = project
        self.user = user
        self.report = ImportReport()
        self.written: list[str] = []  # files stored by this import, removed if it rolls back
        self._classes = {c.name: c for c in project.classes.all()}

    def add(self, name: str, data: bytes, *, label: str | None = None,
            source: str = "") -> Item | None:
        """Import one image. Returns the new Item, or None when skipped (duplicate or error).
        With `source` (s3://bucket/key or an http(s) URL) the item references the image there
        instead of storing a copy (--no-copy); `data` is still checked and hashed."""
        try:
            info = check_image(data, name)
        except InvalidUpload as exc:
            self.report.errors[name] = str(exc)
            return None
        digest = hashlib.sha256(data).hexdigest()
        # One indexed lookup (project, sha256) per image instead of every hash of the project in
        # memory: an import into a million-item project stays small. Rows this import added
        # earlier are visible too (same transaction, or committed blocks).
        if Item.objects.filter(project=self.project, sha256=digest).exists():
            self.report.duplicates.append(name)
            return None
        item = Item(
            project=self.project,
            original_name=name[-300:],
            sha256=digest,
            width=info.width,
            height=info.height,
            source=source,
        )
        if not source:
            # The stored name's extension is the decoded format's, never the client's: a JPEG
            # named evil.html is stored (and served) as a JPEG.
            item.image.save(f"image.{info.type.extension}", ContentFile(data), save=False)
            self.written.append(item.image.name)
        item.save()
        self.report.created.append(item.pk)
        if label:
            try:
                self._label(item, label)
            except ValueError as exc:  # a folder name that is no valid class name
                self.report.errors[name] = f"imported without a label: {exc}"
        return item

    def _label(self, item: Item, class_name: str) -> None:
        from labeler.annotations.models import Source
        from labeler.annotations.services import save_annotation
        from labeler.projects.services import add_class

        label = self._classes.get(class_name)
        if label is None:
            label = add_class(self.project, class_name)
            self._classes[class_name] = label
        save_annotation(
            item, label, self.user, source=Source.IMPORT, trigger_retrain=False
        )
        self.report.labeled += 1

    def add_zip(self, fileobj, *, archive_name: str = "upload.zip") -> None:
        try:
            for name, data in iter_zip_images(fileobj):
                key = f"{archive_name}:{name}"
                if isinstance(data, InvalidUpload):
                    self.report.errors[key] = str(data)
                else:
                    self.add(key, data)
        except InvalidUpload as exc:
            self.report.errors[archive_name] = str(exc)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction whose rollback also deletes the files stored inside it.

        (A process killed mid-import cannot clean up: `manage.py sweep_media` removes those.)
        """
        start = len(self.written)
        try:
            with transaction.atomic():
                yield
        except BaseException:
            for name in self.written[start:]:
                default_storage.delete(name)
            del self.written[start:]
            raise

    def finish(self) -> ImportReport:
        """Queue embedding of the new items (after commit, so the worker sees them)."""
        if self.report.n_created:
            project = self.project
            transaction.on_commit(lambda: request_embedding(project))
            if self.report.labeled:
                transaction.on_commit(lambda: request_retrain_if_due(project))
        logger.info("import into %s: %s", self.project, self.report.summary())
        return self.report


def import_folder(
    project: Project,
    folder: str | Path,
    *,
    labels_from_folders: bool = False,
    user: AbstractBaseUser | None = None,
    limit: int | None = None,
    progress=None,
) -> ImportReport:
    """Import every image under `folder`; with labels_from_folders, `folder/<class>/*` are labeled."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p.name))
    if limit is not None:
        paths = paths[:limit]
    importer = Importer(project, user=user)
    for start in range(0, len(paths), 200):
        with importer.atomic():
            for path in paths[start : start + 200]:
                rel = path.relative_to(root).as_posix()
                label = None
                if labels_from_folders:
                    parts = path.relative_to(root).parts
                    label = parts[0] if len(parts) > 1 else None
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    importer.report.errors[rel] = f"cannot read: {exc}"
                    continue
                importer.add(rel, data, label=label)
        if progress:
            progress(min(start + 200, len(paths)), len(paths))
    with transaction.atomic():
        return importer.finish()


def import_uploads(
    project: Project, files: Iterable, *, user: AbstractBaseUser | None = None
) -> ImportReport:
    """Import browser uploads (Django UploadedFile objects): images and .zip archives."""
    importer = Importer(project, user=user)
    with importer.atomic():
        for upload in files:
            name = upload.name or "upload"
            if upload.size and upload.size > settings.LABELER_MAX_UPLOAD_BYTES:
                importer.report.errors[name] = (
                    f"upload is {upload.size / 1e6:.0f} MB; the limit is "
                    f"{settings.LABELER_MAX_UPLOAD_BYTES / 1e6:.0f} MB"
                )
                continue
            if name.lower().endswith(".zip"):
                importer.add_zip(upload.file, archive_name=name)
            else:
                importer.add(name, upload.read())
        return importer.finish()


def add_from_url(importer: Importer, url: str, *, label: str | None = None,
                 no_copy: bool = False) -> Item | None:
    """Fetch one URL (never from a private address, redirects included: labeler.net_safety)
    and import the image; with no_copy the item keeps referencing the URL."""
    try:
        got = fetch(url, max_bytes=settings.LABELER_MAX_IMAGE_BYTES)
    except (UnsafeURL, FetchError) as exc:
        importer.report.errors[url] = str(exc)
        return None
    if got.status != 200:
        importer.report.errors[url] = f"the server answered HTTP {got.status}"
        return None
    name = urlsplit(got.url).path.rsplit("/", 1)[-1] or "image"
    return importer.add(f"{urlsplit(got.url).hostname}/{name}", got.body, label=label,
                        source=url if no_copy else "")


def import_urls(
    project: Project, urls: Iterable[str], *, user: AbstractBaseUser | None = None,
    no_copy: bool = False,
) -> ImportReport:
    """Fetch each URL and import the image (the API's import by URL)."""
    importer = Importer(project, user=user)
    with importer.atomic():
        for url in urls:
            add_from_url(importer, url, no_copy=no_copy)
        return importer.finish()
