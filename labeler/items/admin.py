from django.contrib import admin
from django.db.models import F, Q
from django.urls import reverse
from django.utils.html import format_html

from labeler.projects.models import LabelClass

from .models import Item


class CurrentLabelFilter(admin.SimpleListFilter):
    title = "current label"
    parameter_name = "current_label"

    def lookups(self, request, model_admin):
        classes = LabelClass.objects.select_related("project").order_by("project__name", "order")
        return [("none", "unlabeled")] + [(str(c.pk), f"{c.project.name}: {c.name}")
                                          for c in classes]

    def queryset(self, request, queryset):
        value = self.value()
        # The denormalised column (labeler.annotations.current): an index, at a million items.
        if value == "none":
            return queryset.filter(current_label__isnull=True)
        if value and value.isdigit():
            return queryset.filter(current_label_id=int(value))
        return queryset


class ConfidenceFilter(admin.SimpleListFilter):
    title = "prediction confidence"
    parameter_name = "confidence"
    BUCKETS = {"lt50": (0.0, 0.5), "50-80": (0.5, 0.8), "80-95": (0.8, 0.95), "ge95": (0.95, 1.01)}

    def lookups(self, request, model_admin):
        return [("lt50", "below 50 %"), ("50-80", "50–80 %"), ("80-95", "80–95 %"),
                ("ge95", "95 % and above"), ("none", "no prediction")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(predicted_confidence__isnull=True)
        if value in self.BUCKETS:
            low, high = self.BUCKETS[value]
            return queryset.filter(predicted_confidence__gte=low, predicted_confidence__lt=high)
        return queryset


class AuditFilter(admin.SimpleListFilter):
    title = "audit item"
    parameter_name = "audit"

    def lookups(self, request, model_admin):
        return [("yes", "labeled as an audit item"), ("no", "not an audit item")]

    def queryset(self, request, queryset):
        audit = Q(annotations__is_audit=True)
        if self.value() == "yes":
            return queryset.filter(pk__in=Item.objects.filter(audit).values("pk"))
        if self.value() == "no":
            return queryset.exclude(pk__in=Item.objects.filter(audit).values("pk"))
        return queryset


class LabelCountFilter(admin.SimpleListFilter):
    """Fixed choices: the default filter on the column would list its distinct values, a scan
    of the whole table on every page."""

    title = "number of labels"
    parameter_name = "labels"

    def lookups(self, request, model_admin):
        return [("0", "none"), ("1", "one"), ("2", "two or more")]

    def queryset(self, request, queryset):
        value = self.value()
        if value in ("0", "1"):
            return queryset.filter(annotation_count=int(value))
        if value == "2":
            return queryset.filter(annotation_count__gte=2)
        return queryset


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "id", "thumbnail", "original_name", "project", "current_label", "predicted_class",
        "confidence", "annotation_count", "query_rank", "leased_by", "created_at",
    ]
    # Every filter reads an indexed column of Item; the choices never scan the item table
    # (RelatedOnlyFieldListFilter and a plain field filter would: SELECT DISTINCT over it).
    list_filter = [
        "project", CurrentLabelFilter, "predicted_class", ConfidenceFilter, AuditFilter,
        LabelCountFilter,
    ]
    search_fields = ["original_name", "sha256"]
    readonly_fields = ["sha256", "width", "height", "random_key"]
    list_select_related = ["project", "predicted_class", "leased_by", "current_label"]
    show_full_result_count = False  # one COUNT per page, not two, at a million items

    @admin.display(description="image")
    def thumbnail(self, item: Item) -> str:
        url = reverse("insights:thumb", args=[item.pk])
        return format_html('<img src="{}" width="64" height="64" loading="lazy" alt="{}">',
                           url, item.original_name)

    @admin.display(description="current label", ordering="current_label__name")
    def current_label(self, item: Item) -> str:
        return item.current_label.name if item.current_label else "–"

    @admin.display(description="confidence", ordering=F("predicted_confidence").desc(
        nulls_last=True))
    def confidence(self, item: Item) -> str:
        c = item.predicted_confidence
        return "–" if c is None else f"{100 * c:.0f} %"
