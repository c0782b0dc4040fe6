from django.contrib import admin
from django.db import models

from .events import redeliver
from .models import Delivery, Webhook


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ["event", "status", "attempts", "response_code", "error", "created_at",
              "delivered_at"]
    readonly_fields = fields
    ordering = ["-id"]
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["project", "url", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "project__name"]
    inlines = [DeliveryInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read-only (deliveries are made by the app, not by hand)."""

    list_display = ["id", "webhook", "event", "status", "attempts", "response_code",
                    "created_at", "delivered_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["send_again"]

    @admin.action(description="Send the selected deliveries again")
    def send_again(self, request, queryset) -> None:
        for delivery in queryset:
            redeliver(delivery)

    def has_add_permission(self, request) -> bool:
        return False
