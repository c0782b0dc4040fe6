"""Items (images): listing filters, uploads, import by URL."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from labeler.items.models import Item
from labeler.request_input import ID_MAX

MAX_URLS = 100


class ItemSerializer(serializers.ModelSerializer):
    label = serializers.IntegerField(source="current_label_id", allow_null=True,
                                     help_text="The current label's class id (null: unlabeled).")
    is_audit = serializers.BooleanField(source="has_audit_label")
    predicted_class = serializers.IntegerField(source="predicted_class_id", allow_null=True)
    image_url = serializers.SerializerMethodField()
    source = serializers.CharField(
        read_only=True, help_text="The referenced s3:// object or URL of an item imported "
                                  "without a copy (--no-copy); empty when the image is stored.")

    class Meta:
        model = Item
        fields = [
            "id", "original_name", "sha256", "width", "height", "created_at",
            "annotation_count", "label", "is_audit", "predicted_class", "predicted_confidence",
            "embed_error", "image_url", "source",
        ]
        read_only_fields = fields

    def get_image_url(self, item: Item) -> str:
        return reverse("api:item-image", args=[item.project_id, item.pk])


class ItemFilterSerializer(serializers.Serializer):
    labeled = serializers.BooleanField(required=False, allow_null=True, default=None)
    audit = serializers.BooleanField(required=False, allow_null=True, default=None,
                                     help_text="Only items with (true) or without an audit label.")
    label = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX,
                                     help_text="Current label's class id.")
    predicted_class = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)
    confidence_min = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    confidence_max = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), min_length=1,
        help_text="Images and .zip archives of images (several `files` parts).",
    )


class UrlImportSerializer(serializers.Serializer):
    urls = serializers.ListField(child=serializers.URLField(max_length=2000), min_length=1,
                                 max_length=MAX_URLS)
    no_copy = serializers.BooleanField(
        default=False, help_text="Keep each URL as the item's image source instead of storing a "
                                 "copy (fetched again, through the same checks, when needed).")


class ImportReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    labeled = serializers.IntegerField()
    duplicates = serializers.ListField(child=serializers.CharField())
    errors = serializers.DictField(child=serializers.CharField())
    item_ids = serializers.ListField(child=serializers.IntegerField())
