from django.contrib import admin, messages

from labeler.insights.admin_actions import export_labels
from labeler.training.services import request_embedding, request_retrain

from .models import LabelClass, Membership, Project


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0
    fields = ["order", "name", "hotkey", "color"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "backbone", "query_strategy", "retrain_every", "created_at"]
    list_filter = ["backbone", "query_strategy"]
    search_fields = ["name", "description"]
    readonly_fields = ["work_checked_at"]
    inlines = [LabelClassInline, MembershipInline]
    actions = ["retrain_now", "embed_missing", export_labels]

    @admin.action(description="Retrain now")
    def retrain_now(self, request, queryset):
        queued = sum(request_retrain(p) for p in queryset)
        self.message_user(request, f"{queued} retrain(s) queued.", messages.SUCCESS)

    @admin.action(description="Embed items that have no embedding yet (checks every item)")
    def embed_missing(self, request, queryset):
        queued = sum(request_embedding(p, rescan=True) for p in queryset)
        self.message_user(request, f"{queued} embedding run(s) queued.", messages.SUCCESS)


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "hotkey", "order", "color"]
    list_filter = ["project"]
    search_fields = ["name", "project__name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user"]
