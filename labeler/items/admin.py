from django.contrib import admin
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html

from labeler.annotations.current import leads
from labeler.annotations.models import Annotation
from labeler.projects.models import LabelClass

from .models import Item


def with_current_label(queryset: QuerySet[Item]) -> QuerySet[Item]:
    """Annotate ``label_now_id`` (and ``label_now_name``) in SQL, by the current-label rule
    (labeler.annotations.current): the latest label by a lead of the project, else the
    majority over annotators with the latest label breaking ties. Correlated subqueries per
    row of the page, so the list stays paginated, sortable and filterable at any size."""
    by_lead = (
        Annotation.objects.filter(item=OuterRef("pk"),
                                  annotator__in=leads(OuterRef(OuterRef("project"))))
        .order_by("-created_at", "-pk").values("label")[:1]
    )
    majority = (
        Annotation.objects.filter(item=OuterRef("pk")).order_by().values("label")
        .annotate(votes=Count("pk"), last=Max("created_at"))
        .order_by("-votes", "-last").values("label")[:1]
    )
    return queryset.annotate(
        label_now_id=Coalesce(Subquery(by_lead), Subquery(majority))
    ).annotate(label_now_name=Subquery(
        LabelClass.objects.filter(pk=OuterRef("label_now_id")).values("name")[:1]
    ))


class CurrentLabelFilter(admin.SimpleListFilter):
    title = "current label"
    parameter_name = "current_label"

    def lookups(self, request, model_admin):
        classes = LabelClass.objects.select_related("project").order_by("project__name", "order")
        return [("none", "unlabeled")] + [(str(c.pk), f"{c.project.name}: {c.name}")
                                          for c in classes]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(annotation_count=0)
        if value and value.isdigit():
            return queryset.filter(label_now_id=int(value))
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


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "id", "thumbnail", "original_name", "project", "current_label", "predicted_class",
        "confidence", "annotation_count", "query_rank", "leased_by", "created_at",
    ]
    list_filter = [
        "project", CurrentLabelFilter, ("predicted_class", admin.RelatedOnlyFieldListFilter),
        ConfidenceFilter, AuditFilter, "annotation_count",
    ]
    search_fields = ["original_name", "sha256"]
    readonly_fields = ["sha256", "width", "height", "random_key"]
    list_select_related = ["project", "predicted_class", "leased_by"]

    def get_queryset(self, request):
        return with_current_label(super().get_queryset(request))

    @admin.display(description="image")
    def thumbnail(self, item: Item) -> str:
        url = reverse("insights:thumb", args=[item.pk])
        return format_html('<img src="{}" width="64" height="64" loading="lazy" alt="{}">',
                           url, item.original_name)

    @admin.display(description="current label", ordering="label_now_name")
    def current_label(self, item: Item) -> str:
        return item.label_now_name or "–"

    @admin.display(description="confidence", ordering=F("predicted_confidence").desc(
        nulls_last=True))
    def confidence(self, item: Item) -> str:
        c = item.predicted_confidence
        return "–" if c is None else f"{100 * c:.0f} %"
