from django.contrib import admin

from .models import Item


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "id", "original_name", "project", "width", "height", "annotation_count",
        "predicted_class", "predicted_confidence", "query_rank", "leased_by", "created_at",
    ]
    list_filter = ["project", "annotation_count", "predicted_class"]
    search_fields = ["original_name", "sha256"]
    readonly_fields = ["sha256", "width", "height", "random_key"]
    list_select_related = ["project", "predicted_class", "leased_by"]
