"""How this process reaches an S3-compatible store: from the environment only, so a GPU machine
needs no Django settings. The web side (labeler.storage_settings) reads the same variables, so
both sides talk to one endpoint.

Variables: ``LABELER_S3_ENDPOINT_URL`` (else ``AWS_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``; unset: AWS itself), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (read by botocore itself),
``AWS_S3_REGION_NAME`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def endpoint_url() -> str | None:
    for name in ("LABELER_S3_ENDPOINT_URL", "AWS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def region_name() -> str | None:
    for name in ("AWS_S3_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``; ValueError if not one."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{url!r} is not an s3://bucket/prefix URL.")
    return parts.netloc, parts.path.strip("/")


def fsspec_options() -> dict:
    """Keyword arguments of s3fs.S3FileSystem for this endpoint and region."""
    options: dict = {}
    if endpoint_url():
        options["endpoint_url"] = endpoint_url()
    if region_name():
        options["client_kwargs"] = {"region_name": region_name()}
    return options


def boto3_client():
    """A boto3 S3 client for this endpoint (listings of bucket imports)."""
    import boto3  # the web side's dependency; the worker reads through s3fs

    return boto3.client("s3", endpoint_url=endpoint_url(), region_name=region_name())
