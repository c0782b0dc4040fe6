"""Background jobs (one Job model for every kind), trained heads (one ModelVersion per retrain)
and backbone checks."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from labeler.projects.models import Project


class Job(models.Model):
    """One run of background work on a project. Every state change goes through
    labeler.training.actions (``do_*``); at most one job per (project, kind) is active.

    ``cursor`` is how far the job got, by kind: embedding, the highest item id whose chunk is
    done (chunks are cut by id, so the next job starts where this one stopped); retrain, the
    highest annotation id its labels include (annotations above it are the "new labels" that
    call for the next retrain).
    """

    class Kind(models.TextChoices):
        EMBED = "embed", "Embedding"
        RETRAIN = "retrain", "Retrain"
        MAP = "map", "Embedding map"
        EXPORT = "export", "Export"
        SWITCH_BACKBONE = "switch_backbone", "Backbone switch"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        # Could not be queued (the broker was down): the sweep queues it when the broker is back.
        DELAYED = "delayed", "Delayed"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (State.QUEUED, State.RUNNING, State.DELAYED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # The owner: reports (progress, chunk done, results) count only with this token.
    token = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    cursor = models.BigIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    rate = models.FloatField(default=0.0, help_text="Items per second.")
    message = models.TextField(blank=True)
    result = models.CharField(max_length=500, blank=True, help_text="Location of its results.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(help_text="Last sign of life (queued, progress, beat).")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind"], condition=Q(status__in=["queued", "running", "delayed"]),
                name="one_active_job_per_kind",
            )
        ]
        indexes = [models.Index(fields=["project", "kind", "status", "id"], name="job_lookup")]

    def __str__(self) -> str:
        return f"{self.project} {self.kind} #{self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE


class Status(models.TextChoices):
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ModelVersionQuerySet(models.QuerySet):
    def latest_ready(self, project: Project | int) -> ModelVersion | None:
        """The project's newest ready version: what suggestions, pages and exports use."""
        return self.filter(project=project, status=Status.READY).order_by("-number").first()


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

    objects = ModelVersionQuerySet.as_manager()

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


class EmbedChunk(models.Model):
    """One chunk of an embedding job: the items with ids in ``(after, last_id]`` that were not
    stored when it was cut (``ids``), embedded by one GPU worker into one store object named by
    the range (``name``), so a chunk done twice replaces its object instead of adding one.

    Several chunks of one job run at once (``LABELER_EMBED_PARALLEL``). A chunk is *claimed*
    with a fresh ``token`` each time it is sent: its worker's heartbeats and report count only
    with that token, so when a silent chunk (the job staleness rule, per chunk) is claimed again
    by another worker, a late report from the first one changes nothing.
    """

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    after = models.BigIntegerField(help_text="Items above this id…")
    last_id = models.BigIntegerField(help_text="…up to this one.")
    ids = models.JSONField(default=list, help_text="The ids to embed (fixed when cut).")
    status = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    token = models.CharField(max_length=32)
    claims = models.PositiveIntegerField(default=1, help_text="Times it was sent to a worker.")
    worker = models.CharField(max_length=200, blank=True, help_text="Who holds or did it.")
    progress = models.PositiveIntegerField(default=0, help_text="Items done, while it runs.")
    rate = models.FloatField(default=0.0, help_text="Its worker's items per second.")
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "last_id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "last_id"], name="one_chunk_per_range")
        ]
        indexes = [models.Index(fields=["job", "status", "heartbeat_at"], name="chunk_claims")]

    def __str__(self) -> str:
        return f"job {self.job_id} chunk ({self.after}, {self.last_id}] ({self.status})"

    @property
    def name(self) -> str:
        """The store object's name: fixed by the range, whoever embeds it and how often."""
        return f"range-{self.after + 1:020d}-{self.last_id:020d}"
