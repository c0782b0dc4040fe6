"""Projects, their label classes and members."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeler.projects.access import role_of
from labeler.projects.models import LabelClass, Membership, Project, Role


class LabelClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["id", "name", "hotkey", "order", "color"]
        read_only_fields = fields


class LabelClassCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class LabelClassUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)


class ProjectSerializer(serializers.ModelSerializer):
    classes = LabelClassSerializer(many=True, read_only=True)
    role = serializers.SerializerMethodField(help_text="The caller's role: lead or annotator.")

    class Meta:
        model = Project
        fields = [
            "id", "name", "description", "backbone", "query_strategy", "retrain_every",
            "audit_share", "lease_seconds", "overlap", "created_at", "role", "classes",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_role(self, project: Project) -> str | None:
        return role_of(self.context["request"].user, project)


class ProjectSettingsSerializer(serializers.Serializer):
    """What a lead may change (labeler.projects.services.update_settings validates again)."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    query_strategy = serializers.CharField(max_length=64, required=False)
    retrain_every = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    audit_share = serializers.FloatField(min_value=0.0, max_value=0.5, required=False)
    lease_seconds = serializers.IntegerField(min_value=1, max_value=7 * 86400, required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)


class ProjectCreateSerializer(ProjectSettingsSerializer):
    name = serializers.CharField(max_length=200)
    classes = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=34,
        help_text="Class names, in hotkey order.",
    )

    def validate_name(self, value: str) -> str:
        if Project.objects.filter(name=value).exists():
            raise serializers.ValidationError("There is already a project with this name.")
        return value


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "created_at"]
        read_only_fields = fields


class MemberWriteSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError("No active user with this name.")
        return user


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class StatusSerializer(serializers.Serializer):
    """What the pages poll: embedding progress, labels, the current model, retraining."""

    items = serializers.IntegerField()
    labeled = serializers.IntegerField()
    embedding = serializers.DictField()
    retraining = serializers.BooleanField()
    delayed = serializers.CharField(allow_null=True)
    model = serializers.DictField(allow_null=True)

