from django.contrib import admin

from .models import Annotation


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = [
        "id", "item", "label_set", "label", "annotator", "source", "is_audit", "seconds_spent", "created_at",
    ]
    list_filter = ["source", "is_audit", "label__project", "annotator"]
    search_fields = ["item__original_name", "label__name", "annotator__username"]
    list_select_related = ["item", "label_set", "label", "annotator"]
    raw_id_fields = ["item"]
