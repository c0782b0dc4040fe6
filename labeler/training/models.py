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
