from django.contrib import admin

from .models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "project", "number", "status", "labels_used", "cv_accuracy", "audit_accuracy",
        "backbone", "strategy", "created_at", "finished_at",
    ]
    list_filter = ["status", "project", "backbone", "strategy"]
    search_fields = ["project__name"]
    readonly_fields = ["metrics", "head_file", "error"]
