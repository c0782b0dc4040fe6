"""Export jobs."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeler.insights.exports import FORMATS
from labeler.training.models import Job


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(FORMATS))
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False,
                                       allow_null=True,
                                       help_text="Model version (model and prediction formats).")
    unlabeled = serializers.BooleanField(default=True,
                                         help_text="Include unlabelled images (COCO formats).")


class ExportJobSerializer(serializers.ModelSerializer):
    format = serializers.CharField(source="params.format")
    kib_written = serializers.IntegerField(source="done")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "format", "status", "kib_written", "message", "created_at",
                  "finished_at", "download_url"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download_url(self, job: Job) -> str | None:
        if job.status != Job.State.DONE or not job.result:
            return None
        return reverse("api:export-download", args=[job.project_id, job.pk])
