"""Labels given by annotators."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labeler.items.models import Item
from labeler.projects.models import LabelClass, LabelSet


class Source(models.TextChoices):
    MANUAL = "manual", "Labeled one by one"
    GRID = "grid", "Confirmed in grid"
    IMPORT = "import", "Imported from folders"


class Annotation(models.Model):
    """One annotator's answer for one label set of one item: a class (single-choice sets) or a
    set of tags, possibly empty (multi-label sets). One visit of the labeling page writes one
    row per set."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    label_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="annotations")
    label = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.CASCADE, related_name="annotations"
    )
    tags = models.ManyToManyField(LabelClass, blank=True, related_name="tagged_annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="annotations",
    )
    seconds_spent = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    # Drawn uniformly at random when served: the unbiased sample for accuracy estimates.
    is_audit = models.BooleanField(default=False)
    # Set by the browser per visit; a retried save with the same id never creates a second row.
    client_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator", "label_set"],
                                    name="one_label_per_annotator_and_set"),
            models.UniqueConstraint(fields=["client_id", "label_set"], name="one_row_per_client_id"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label}"


class Skip(models.Model):
    """An annotator passed on an item (unclear, off-topic...): never served to them again."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skips"
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_skip_per_annotator")
        ]

    def __str__(self) -> str:
        return f"{self.item_id} skipped by {self.annotator_id}"
