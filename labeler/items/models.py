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
    # The stored copy of the image; empty for an item that references its source (below).
    image = models.FileField(upload_to=item_upload_to, max_length=300, blank=True)
    # Imported with --no-copy: the image stays where it was (s3://bucket/key or an https URL)
    # and is read from there (labeler.items.sources); deleting the item never deletes it.
    source = models.CharField(max_length=2000, blank=True, editable=False)
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

    # Denormalised for the lead's item table (labeler.insights.browse): filters and keyset
    # pages on indexed columns at a million items. current_label and has_audit_label follow
    # the annotations (labeler.annotations.current); oof_predicted is the out-of-fold
    # prediction of the last retrain for the items it trained on (the confusion matrix's
    # "predicted"), null elsewhere.
    current_label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        editable=False, db_index=False,  # the composite indexes below serve every query
    )
    has_audit_label = models.BooleanField(default=False, editable=False)
    oof_predicted = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        editable=False, db_index=False,  # the composite indexes below serve every query
    )

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
            # The item table's filters and sort orders (keyset pagination on (value, id)).
            models.Index(fields=["project", "id"], name="item_project_id"),
            models.Index(fields=["project", "current_label", "id"], name="item_label_id"),
            models.Index(fields=["project", "current_label", "oof_predicted", "id"],
                         name="item_label_oof_id"),
            models.Index(fields=["project", "predicted_confidence", "id"], name="item_conf_id"),
            models.Index(fields=["project", "has_audit_label", "id"], name="item_audit_id"),
            models.Index(fields=["project", "predicted_class", "predicted_confidence", "id"],
                         name="item_pred_conf_id"),
            # The dashboard's per-class count of the whole pool: an index-only scan of a
            # narrow index (a quarter of item_pred_conf_id's size) at a million items.
            models.Index(fields=["project", "predicted_class"], name="item_pred_count"),
        ]

    def __str__(self) -> str:
        return self.original_name


class Prediction(models.Model):
    """The current model's answer for one item in one label set other than the one the item's own
    columns (predicted_class, predicted_confidence) hold: the labeling page's suggestion and grid
    mode for every set. Single-choice sets: one row (the top class). Multi-label sets: one row per
    tag the model predicts (probability >= 0.5), or one row with no class when it predicts none.
    Rewritten by every retrain."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    label_set = models.ForeignKey(
        "projects.LabelSet", on_delete=models.CASCADE, related_name="predictions"
    )
    label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    confidence = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["item", "label_set"], name="prediction_item_set"),
            # Grid mode: a set's most confident items of one class.
            models.Index(fields=["label_set", "label", "confidence"], name="prediction_set_conf"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label_id} ({self.confidence:.2f})"
