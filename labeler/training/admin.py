from django.contrib import admin

from .models import BackboneCheck, ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "project", "number", "status", "labels_used", "cv_accuracy", "audit_accuracy",
        "backbone", "strategy", "created_at", "finished_at",
    ]
    list_filter = ["status", "project", "backbone", "strategy"]
    search_fields = ["project__name"]
    readonly_fields = ["metrics", "head_file", "error"]


@admin.register(BackboneCheck)
class BackboneCheckAdmin(admin.ModelAdmin):
    list_display = ["project", "status", "backbone", "labels_used", "created_at", "finished_at"]
    list_filter = ["status", "project"]
    search_fields = ["project__name"]
    readonly_fields = ["result", "error", "stage", "done", "total"]
