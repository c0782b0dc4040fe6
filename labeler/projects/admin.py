from django.contrib import admin, messages

from labeler.insights.admin_actions import export_labels
from labeler.training.services import request_embedding, request_retrain

from .models import LabelClass, LabelSet, Membership, Project, SetKind


class LabelSetInline(admin.TabularInline):
    model = LabelSet
    extra = 0
    fields = ["order", "name", "kind", "removed_at"]
    readonly_fields = ["removed_at"]


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0
    fields = ["label_set", "order", "name", "hotkey", "color"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Only the edited project's sets; empty means its first set (see save_formset)."""
        if db_field.name == "label_set":
            object_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = LabelSet.objects.filter(
                project_id=object_id if str(object_id or "").isdigit() else None
            )
            kwargs["required"] = False
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


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
    inlines = [LabelSetInline, LabelClassInline, MembershipInline]
    actions = ["retrain_now", "embed_missing", export_labels]

    def save_formset(self, request, form, formset, change):
        """Classes added without a set go to the project's first set (made if it has none)."""
        if formset.model is LabelClass:
            from .label_sets import primary_set

            project = form.instance
            first = primary_set(project) or LabelSet.objects.create(
                project=project, name="Class", kind=SetKind.SINGLE
            )
            for class_form in formset.forms:
                label = class_form.instance
                if class_form.has_changed() and label.label_set_id is None:
                    label.label_set = first
        super().save_formset(request, form, formset, change)

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
    list_display = ["name", "project", "label_set", "hotkey", "order", "color"]
    list_filter = ["project"]
    search_fields = ["name", "project__name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user"]
