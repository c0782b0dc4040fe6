"""Where item images live, from ``LABELER_STORAGE_URL``: the local MEDIA_ROOT (the default) or an
S3-compatible bucket through django-storages (``s3://bucket/prefix``: images under
``prefix/media/``, next to the workers' ``prefix/embeddings`` etc.).

Endpoint, region and credentials come from the variables worker.s3config reads, so the web side
and the GPU workers reach the same store. The bucket stays private: objects get no ACL, and any
URL django-storages would make is signed and short-lived (``LABELER_S3_URL_EXPIRE`` seconds);
the pages serve images through the login-checked streaming view (labeler.items.views).
"""

from __future__ import annotations

from pathlib import Path

from labeler.envvars import env_int
from worker import s3config


def is_s3(storage_url: str) -> bool:
    return storage_url.startswith("s3://")


def default_storage_backend(storage_url: str) -> dict:
    """The STORAGES["default"] entry for this storage URL."""
    if not is_s3(storage_url):
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    bucket, prefix = s3config.split_s3_url(storage_url)
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": f"{prefix}/media".lstrip("/"),
            "endpoint_url": s3config.endpoint_url(),
            "region_name": s3config.region_name(),
            "default_acl": None,  # the bucket's own (private) policy; never public-read
            "querystring_auth": True,
            "signature_version": "s3v4",  # what every current store accepts
            "querystring_expire": env_int("LABELER_S3_URL_EXPIRE", 300),
            "file_overwrite": True,  # names are content-addressed: same name, same bytes
        },
    }


def media_location(storage_url: str, media_root: Path | str) -> str:
    """Where a GPU worker reads stored images: the bucket's media prefix, or MEDIA_ROOT."""
    if is_s3(storage_url):
        return f"{storage_url.rstrip('/')}/media"
    return str(media_root)
