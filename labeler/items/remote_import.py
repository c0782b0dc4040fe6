"""Imports that read from elsewhere: every image under an S3 prefix, and a CSV of image URLs
(``manage.py import_images PROJECT s3://bucket/prefix/ | urls.csv``).

Both check their input before importing anything (the bucket exists and can be listed; every CSV
row holds an http(s) URL), so bad input stops with a message and nothing half-imported. They then
stream: the bucket listing page by page, the CSV row by row, committing every BATCH images, so
memory stays bounded at any size and an interrupted import resumes by running it again
(duplicates are skipped by content hash). With ``no_copy`` items reference the source object or
URL (labeler.items.sources reads it on demand) instead of storing a copy.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labeler.projects.models import Project
from worker import s3config

from .importing import Importer, ImportReport, add_from_url
from .validation import is_image_name

BATCH = 200
KEEP = 1000  # ids and names kept in a streamed import's report; the rest are counted
Progress = Callable[[int, int | None], None]


class SourceError(ValueError):
    """The bucket or the CSV cannot be imported at all; the message says why."""


def _batches(rows: Iterator, size: int = BATCH) -> Iterator[list]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


# ------------------------------------------------------------------------------------ bucket


def open_bucket(url: str):
    """(client, bucket, prefix) after checking that the bucket exists and can be listed."""
    try:
        bucket, prefix = s3config.split_s3_url(url)
    except ValueError as exc:
        raise SourceError(str(exc)) from exc
    client = s3config.boto3_client()
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            raise SourceError(f"There is no bucket named {bucket!r}.") from exc
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise SourceError(f"Access to the bucket {bucket!r} was denied ({code}).") from exc
        raise SourceError(f"The bucket {bucket!r} cannot be listed: {code or exc}.") from exc
    except BotoCoreError as exc:  # no endpoint, no credentials
        raise SourceError(f"The object store cannot be reached: {exc}") from exc
    return client, bucket, (f"{prefix}/" if prefix else "")


def _list_objects(client, bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under the prefix, one listing page (1,000) at a time."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):  # "folder" markers some tools create
                yield obj["Key"], int(obj.get("Size", 0))


def import_bucket(
    project: Project,
    url: str,
    *,
    labels_from_folders: bool = False,
    no_copy: bool = False,
    user: AbstractBaseUser | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every image under s3://bucket/prefix/; with labels_from_folders the first folder
    below the prefix is the label (prefix/<class>/...)."""
    client, bucket, prefix = open_bucket(url)
    importer = Importer(project, user=user)
    report = importer.report

    def images() -> Iterator[tuple[str, int]]:
        for key, size in _list_objects(client, bucket, prefix):
            if is_image_name(key):
                yield key, size
            else:
                report.skip_not_image(key[len(prefix):])

    done = 0
    for batch in _batches(itertools.islice(images(), limit)):
        with importer.atomic():
            for key, size in batch:
                rel = key[len(prefix):]
                parts = rel.split("/")
                label = parts[0] if labels_from_folders and len(parts) > 1 else None
                if size > settings.LABELER_MAX_IMAGE_BYTES:
                    report.errors[rel] = (f"file is {size / 1e6:.1f} MB; the limit is "
                                          f"{settings.LABELER_MAX_IMAGE_BYTES / 1e6:.0f} MB")
                    continue
                try:
                    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                except (ClientError, BotoCoreError) as exc:
                    report.errors[rel] = f"cannot read: {exc}"
                    continue
                importer.add(rel, data, label=label,
                             source=f"s3://{bucket}/{key}" if no_copy else "")
        done += len(batch)
        report.trim(KEEP)
        if progress:
            progress(done, None)
    with transaction.atomic():
        return importer.finish()


# ------------------------------------------------------------------------------------ URL CSV


def read_url_csv(path: str | Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, url, label or None) of each row. A header naming a ``url`` column (and maybe a
    ``label`` one) is optional; without one, column 1 is the URL and column 2 the label."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            url_col, label_col = 0, 1
            for row in reader:
                cells = [c.strip() for c in row]
                if not any(cells):
                    continue
                if reader.line_num == 1 and "url" in [c.lower() for c in cells]:
                    lowered = [c.lower() for c in cells]
                    url_col = lowered.index("url")
                    label_col = lowered.index("label") if "label" in lowered else None
                    continue
                label = (cells[label_col] if label_col is not None and label_col < len(cells)
                         else "")
                url = cells[url_col] if url_col < len(cells) else ""
                yield reader.line_num, url, label or None
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such file.") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise SourceError(f"{path} is not a readable CSV file: {exc}") from exc


def check_url_csv(path: str | Path) -> int:
    """The number of URLs, after checking every row; SourceError naming the bad lines."""
    count, bad = 0, []
    for line, url, _ in read_url_csv(path):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            bad.append(f"line {line}: {url[:80]!r} is not an http(s) URL")
        count += 1
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise SourceError(f"{path}: " + "; ".join(bad[:5]) + more + ". Nothing was imported.")
    if not count:
        raise SourceError(f"{path} holds no URLs.")
    return count


def import_url_csv(
    project: Project,
    path: str | Path,
    *,
    no_copy: bool = False,
    user: AbstractBaseUser | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Fetch and import each URL of the CSV (refusing private addresses, redirects included)."""
    total = check_url_csv(path)
    if limit is not None:
        total = min(total, limit)
    importer = Importer(project, user=user)
    report = importer.report
    done = 0
    for batch in _batches(itertools.islice(read_url_csv(path), limit)):
        with importer.atomic():
            for _, url, label in batch:
                add_from_url(importer, url, label=label, no_copy=no_copy)
        done += len(batch)
        report.trim(KEEP)
        if progress:
            progress(done, total)
    with transaction.atomic():
        return importer.finish()
