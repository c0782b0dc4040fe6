"""Model versions and retrain requests."""

from __future__ import annotations

from rest_framework import serializers

from labeler.training.models import ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "number", "status", "backbone", "strategy", "labels_used", "metrics",
                  "error", "created_at", "finished_at"]
        read_only_fields = fields


class RetrainSerializer(serializers.Serializer):
    queued = serializers.BooleanField(help_text="False: a retrain is already queued or running.")
    retraining = serializers.BooleanField()
