"""Webhooks and their delivery log."""

from __future__ import annotations

from rest_framework import serializers

from labeler.webhooks.models import Delivery, Event, Webhook


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.values))

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_at"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookWriteSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.values),
                                   min_length=1, max_length=len(Event.values))
    secret = serializers.CharField(max_length=100, min_length=16, required=False,
                                   help_text="Leave out to have one generated (shown once).")
    active = serializers.BooleanField(required=False, default=True)


class WebhookUpdateSerializer(WebhookWriteSerializer):
    url = serializers.URLField(max_length=2000, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.values),
                                   min_length=1, max_length=len(Event.values), required=False)
    active = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["id", "event", "payload", "status", "attempts", "response_code", "error",
                  "created_at", "last_attempt_at", "delivered_at"]
        read_only_fields = fields
