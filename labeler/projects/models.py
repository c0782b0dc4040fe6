"""Projects, their label classes and who may work on them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

DEFAULT_BACKBONE = "efficientnet-lite0"
DEFAULT_STRATEGY = "auto"
# Hotkeys in the order classes get them: 1-9, 0, then letters that are not labeling commands.
HOTKEY_ORDER = list("1234567890") + [c for c in "abcdefghijklmnopqrtuvwxy" if c not in "sz"]
CLASS_COLORS = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]


class Role(models.TextChoices):
    LEAD = "lead", "Lead"
    ANNOTATOR = "annotator", "Annotator"


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    backbone = models.CharField(max_length=64, default=DEFAULT_BACKBONE)
    backbone_weights = models.CharField(
        max_length=500, blank=True,
        help_text="Weights file for a torchvision backbone (else the torch cache is searched).",
    )
    query_strategy = models.CharField(max_length=64, default=DEFAULT_STRATEGY)
    retrain_every = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text="Retrain the head after this many new labels (1 to 10,000).",
    )
    audit_share = models.FloatField(
        default=0.10, help_text="Share of served items drawn uniformly at random (audit items)."
    )
    lease_seconds = models.PositiveIntegerField(
        default=300, help_text="An item handed to an annotator is theirs until this much inactivity."
    )
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Annotators per item (more than 1 measures agreement)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # When the sweep (labeler.training.sweep) last looked at this project: old means no worker,
    # scheduler or broker runs. The state of background work itself is in its jobs
    # (labeler.training.models.Job).
    work_checked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def _switch(self) -> dict:
        """The params of the active backbone switch job ({} when none; one indexed query)."""
        found = self.jobs.filter(kind="switch_backbone", status__in=["queued", "running", "delayed"])
        return found.values_list("params", flat=True).first() or {}

    @property
    def pending_backbone(self) -> str:
        """The backbone being switched to (embedded in the background), or ""."""
        return self._switch().get("backbone", "")

    @property
    def pending_weights(self) -> str:
        return self._switch().get("weights", "")


class SetKind(models.TextChoices):
    SINGLE = "single", "Single choice"
    MULTI = "multi", "Multi-label"


class LabelSet(models.Model):
    """One question asked of every image: single-choice (exactly one class) or multi-label (any
    number of tags, none included). A project has one or more; they share the embeddings."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_sets")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=SetKind.choices, default=SetKind.SINGLE)
    order = models.PositiveIntegerField(default=0)
    # Removed by a lead: hidden from labeling and learning, its annotations still exported,
    # until the lead confirms the deletion (labeler.projects.label_sets.delete_set).
    removed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["project", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_set_name_per_project")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def multi(self) -> bool:
        return self.kind == SetKind.MULTI


class LabelClass(models.Model):
    # project is the set's project, kept on the class so that "a class of this project" stays
    # one indexed lookup on the annotators' hot path.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    label_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    hotkey = models.CharField(max_length=1, blank=True)
    order = models.PositiveIntegerField(default=0)
    color = models.CharField(max_length=7, blank=True)

    class Meta:
        ordering = ["project", "order", "id"]
        verbose_name = "label class"
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(fields=["label_set", "name"], name="unique_class_name_per_set")
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.project} ({self.role})"
