from django.contrib import admin

from .models import BackboneCheck, EmbedChunk, Job, ModelVersion


class EmbedChunkInline(admin.TabularInline):
    """An embedding job's chunks: which worker did each, how often it was claimed (read-only)."""

    model = EmbedChunk
    fields = ["after", "last_id", "status", "worker", "claims", "progress", "heartbeat_at",
              "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Background jobs: records, changed only by labeler.training.actions (read-only here)."""

    inlines = [EmbedChunkInline]

    list_display = ["project", "kind", "status", "done", "total", "rate", "created_at",
                    "heartbeat_at", "finished_at"]
    list_filter = ["kind", "status", "project"]
    search_fields = ["project__name", "message"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Model versions are records of work the worker did: viewable, never added, edited or
    deleted by hand (a retrain makes them; deleting the project removes them)."""

    list_display = [
        "project", "number", "status", "labels_used", "cv_accuracy", "audit_accuracy",
        "backbone", "strategy", "created_at", "finished_at",
    ]
    list_filter = ["status", "project", "backbone", "strategy"]
    search_fields = ["project__name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BackboneCheck)
class BackboneCheckAdmin(admin.ModelAdmin):
    """Records of checks the worker ran: read-only, like model versions."""

    list_display = ["project", "status", "backbone", "labels_used", "created_at", "finished_at"]
    list_filter = ["status", "project"]
    search_fields = ["project__name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
