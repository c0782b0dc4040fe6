"""Saved rows and finished jobs become webhook events: a new annotation, a model version that
became ready, an embedding or export job that is done."""

from __future__ import annotations

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.urls import reverse

from labeler.annotations.models import Annotation
from labeler.training.actions import job_finished
from labeler.training.models import Job, ModelVersion, Status

from .events import emit
from .models import Event


@receiver(post_save, sender=Annotation, dispatch_uid="webhook_annotation_created")
def annotation_created(sender, instance: Annotation, created: bool, **kwargs) -> None:
    if created:
        emit(instance.item.project_id, Event.ANNOTATION_CREATED, {
            "annotation": instance.pk, "item": instance.item_id, "label": instance.label_id,
            "annotator": instance.annotator_id, "source": instance.source,
        })


@receiver(pre_save, sender=ModelVersion, dispatch_uid="webhook_version_status_before")
def remember_status(sender, instance: ModelVersion, **kwargs) -> None:
    instance._status_before = (
        ModelVersion.objects.filter(pk=instance.pk).values_list("status", flat=True).first()
        if instance.pk else None
    )


@receiver(post_save, sender=ModelVersion, dispatch_uid="webhook_model_version_ready")
def version_ready(sender, instance: ModelVersion, **kwargs) -> None:
    if instance.status == Status.READY and getattr(instance, "_status_before", None) != Status.READY:
        emit(instance.project_id, Event.MODEL_VERSION_READY, {
            "model_version": instance.number, "id": instance.pk,
            "labels_used": instance.labels_used, "metrics": instance.metrics,
        })


@receiver(job_finished, dispatch_uid="webhook_job_finished")
def job_done(sender, job_id: int, **kwargs) -> None:
    """A finished embedding (or backbone switch) or export job becomes its event."""
    job = Job.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        return
    if job.kind in (Job.Kind.EMBED, Job.Kind.SWITCH_BACKBONE):
        emit(job.project_id, Event.EMBEDDING_DONE, {
            "job": job.pk, "items": job.done,
            "backbone": job.params.get("backbone") or job.project.backbone,
        })
    elif job.kind == Job.Kind.EXPORT:
        emit(job.project_id, Event.EXPORT_READY, {
            "export": job.pk, "format": job.params.get("format"),
            "download": reverse("api:export-download", args=[job.project_id, job.pk]),
        })
