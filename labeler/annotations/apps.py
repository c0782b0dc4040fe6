from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "labeler.annotations"
    label = "annotations"
    verbose_name = "Annotations"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (releases a removed member's leases)
