"""Where a project's files live in the shared storage (worker.storage locations).

The web side decides every location from its settings and hands them to the GPU workers in
their task messages, so a worker needs no configuration beyond the broker and storage access.
"""

from __future__ import annotations

from django.conf import settings

from labeler.storage_settings import media_location
from worker import storage
from worker.ml.embedding_store import EmbeddingStore


def store_root(project_id: int) -> str:
    """A project's embeddings: one folder per backbone below it."""
    return storage.join(settings.EMBEDDINGS_ROOT, str(project_id))


def store_location(project_id: int, backbone: str) -> str:
    """Embeddings of one project under one backbone: a folder, so backbones never mix."""
    return storage.join(store_root(project_id), backbone)


def store_for(project_id: int, backbone: str) -> EmbeddingStore:
    return EmbeddingStore(store_location(project_id, backbone))


def head_location(project_id: int, number: int) -> str:
    return storage.join(settings.MODELS_ROOT, str(project_id), f"v{number}.joblib")


def result_location(project_id: int, job_id: int) -> str:
    """A retrain's results file (ranking, per-item predictions): read once, then removed."""
    return storage.join(settings.RESULTS_ROOT, str(project_id), f"job{job_id}.npz")


def map_location(project_id: int, backbone: str) -> str:
    return storage.join(settings.EMBEDDINGS_ROOT, str(project_id), f"{backbone}.map.npz")


def image_location(name: str, source: str = "") -> str:
    """An item's image as the worker opens it: the source object or URL of an item imported
    with --no-copy, else its stored file (FileField name) in the bucket or under MEDIA_ROOT."""
    if source:
        return source
    return storage.join(media_location(settings.LABELER_STORAGE_URL, settings.MEDIA_ROOT), name)
