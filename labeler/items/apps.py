from django.apps import AppConfig


class ItemsConfig(AppConfig):
    name = "labeler.items"
    label = "items"
    verbose_name = "Items"
