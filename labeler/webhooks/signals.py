"""Saved rows become webhook events: a new annotation, a model version that became ready."""

from __future__ import annotations

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from labeler.annotations.models import Annotation
from labeler.training.models import ModelVersion, Status

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
