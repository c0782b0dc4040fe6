"""Trained heads: one ModelVersion per retrain."""

from __future__ import annotations

from django.db import models

from labeler.projects.models import Project


class Status(models.TextChoices):
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    backbone = models.CharField(max_length=64)
    strategy = models.CharField(max_length=64)
    labels_used = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    head_file = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        get_latest_by = "number"
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="unique_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.number}"

    @property
    def cv_accuracy(self) -> float | None:
        return self.metrics.get("cv_accuracy")

    @property
    def audit_accuracy(self) -> float | None:
        return self.metrics.get("audit_accuracy")


class BackboneCheck(models.Model):
    """One run of the backbone check: how well each installed backbone transfers to the labels.

    ``result`` holds worker.ml.transferability.assess_backbones' output (table, recommendation,
    "transfer does not fit" flag) plus the measured embedding rates; see worker/backbone_check.py.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="backbone_checks")
    status = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    backbone = models.CharField(max_length=64, help_text="The project's backbone when it ran.")
    labels_used = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Images embedded so far.")
    total = models.PositiveIntegerField(default=0, help_text="Images to embed.")
    stage = models.CharField(max_length=200, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.project} backbone check {self.created_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in (self.State.QUEUED, self.State.RUNNING)
