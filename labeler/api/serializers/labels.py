"""Annotations, predictions and the labeling queue."""

from __future__ import annotations

from rest_framework import serializers

from labeler.annotations.models import Annotation
from labeler.request_input import ID_MAX

ID = {"min_value": 1, "max_value": ID_MAX}
MAX_BULK = 5000


class AnnotationSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id")
    label = serializers.IntegerField(source="label_id")
    annotator = serializers.IntegerField(source="annotator_id", allow_null=True)

    class Meta:
        model = Annotation
        fields = ["id", "item", "label", "annotator", "source", "is_audit", "client_id",
                  "seconds_spent", "created_at", "updated_at"]
        read_only_fields = fields


class AnnotationCreateSerializer(serializers.Serializer):
    item = serializers.IntegerField(**ID)
    label = serializers.IntegerField(**ID, help_text="A class id of the project.")
    client_id = serializers.UUIDField(
        required=False, allow_null=True,
        help_text="Your id for this label: a retried request with it never labels twice.",
    )
    seconds = serializers.FloatField(required=False, min_value=0.0, max_value=3600.0)


class AnnotationResultSerializer(AnnotationSerializer):
    created = serializers.BooleanField(read_only=True)

    class Meta(AnnotationSerializer.Meta):
        fields = [*AnnotationSerializer.Meta.fields, "created"]
        read_only_fields = fields


class BulkLabelSerializer(serializers.Serializer):
    item = serializers.IntegerField(**ID)
    label = serializers.IntegerField(**ID, required=False, help_text="Class id ...")
    class_name = serializers.CharField(max_length=100, required=False,
                                       help_text="... or class name (one of the two).")
    client_id = serializers.UUIDField(required=False, allow_null=True)

    def validate(self, data: dict) -> dict:
        if ("label" in data) == ("class_name" in data):
            raise serializers.ValidationError("Give either label (an id) or class_name.")
        return data


class BulkAnnotationSerializer(serializers.Serializer):
    annotations = BulkLabelSerializer(many=True, allow_empty=False, max_length=MAX_BULK)


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class AnnotationFilterSerializer(serializers.Serializer):
    item = serializers.IntegerField(required=False, **ID)
    annotator = serializers.IntegerField(required=False, **ID)
    source = serializers.ChoiceField(choices=["manual", "grid", "import"], required=False)


class PredictionInSerializer(serializers.Serializer):
    item = serializers.IntegerField(**ID)
    label = serializers.IntegerField(**ID, help_text="The predicted class id.")
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0)


class BulkPredictionSerializer(serializers.Serializer):
    predictions = PredictionInSerializer(many=True, allow_empty=False, max_length=MAX_BULK)


class PredictionSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    label = serializers.IntegerField(allow_null=True, help_text="Current label (null: none).")
    predicted_class = serializers.IntegerField(allow_null=True)
    confidence = serializers.FloatField(allow_null=True)
    probabilities = serializers.DictField(
        child=serializers.FloatField(), allow_null=True,
        help_text="Class id -> probability; null where the item has no embedding yet.",
    )


class PredictionPageSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = PredictionSerializer(many=True)


class NextRequestSerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=20, default=1)
    exclude = serializers.ListField(child=serializers.IntegerField(**ID), max_length=100,
                                    default=list)


class SuggestionSerializer(serializers.Serializer):
    label = serializers.IntegerField()
    confidence = serializers.FloatField()


class QueuedItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    image_url = serializers.CharField()
    suggestion = SuggestionSerializer(allow_null=True)
    lease_expires_in = serializers.IntegerField(help_text="Seconds the item stays yours.")


class NextResponseSerializer(serializers.Serializer):
    items = QueuedItemSerializer(many=True)


class SkipSerializer(serializers.Serializer):
    item = serializers.IntegerField(**ID)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
