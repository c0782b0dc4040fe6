"""Webhooks of a project and the log of every delivery."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labeler.projects.models import Project


class Event(models.TextChoices):
    ANNOTATION_CREATED = "annotation.created", "A label was saved"
    MODEL_VERSION_READY = "model_version.ready", "A model version is ready"
    EXPORT_READY = "export.ready", "An export is ready to download"
    EMBEDDING_DONE = "embedding.done", "Every image is embedded"


class Webhook(models.Model):
    """Where a project's events are POSTed, signed with `secret` (HMAC-SHA256 of the body)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=100, help_text="Signs each body (HMAC-SHA256).")
    events = models.JSONField(default=list, help_text="Event names this hook receives.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]
        indexes = [models.Index(fields=["project", "active"], name="webhook_project_active")]

    def __str__(self) -> str:
        return f"{self.project}: {self.url}"


class Delivery(models.Model):
    """One event sent to one hook: its payload, every try's outcome, the final state."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=Event.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook.url} ({self.status})"
