"""Images to label. One row per unique image (sha256) per project."""

from __future__ import annotations

import random

from django.conf import settings
from django.db import models

from labeler.projects.models import LabelClass, Project

UNRANKED = 2_000_000_000  # query_rank of items the strategy has not ranked (random order after)


def new_random_key() -> float:
    """Uniform key: ordering by it gives a random order that is stable and index-backed."""
    return random.random()


def item_upload_to(instance: Item, filename: str) -> str:
    # Content-addressed path: no user-controlled names on disk, no collisions.
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "img"
    return f"items/{instance.project_id}/{instance.sha256[:2]}/{instance.sha256}.{ext}"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    image = models.FileField(upload_to=item_upload_to, max_length=300)
    original_name = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    random_key = models.FloatField(default=new_random_key, editable=False)

    # Denormalised so that "what to label next" is one indexed query at any pool size.
    annotation_count = models.PositiveIntegerField(default=0)
    # Set by the retrain task: position in the query strategy's ranking. Never null, so that
    # "next item" is an index scan in (query_rank, random_key) order at any pool size.
    query_rank = models.PositiveIntegerField(default=UNRANKED)
    predicted_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    predicted_confidence = models.FloatField(null=True, blank=True)
    embed_error = models.TextField(blank=True)

    # Lease: an item handed to an annotator is held for them until it expires.
    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_is_audit = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="unique_image_per_project")
        ]
        indexes = [
            models.Index(fields=["project", "annotation_count", "query_rank", "random_key"]),
            models.Index(fields=["project", "annotation_count", "random_key"]),
        ]

    def __str__(self) -> str:
        return self.original_name
