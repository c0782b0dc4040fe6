from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The public REST API (/api/v1/) and the personal tokens it is used with."""

    name = "labeler.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (the bearer scheme, for drf-spectacular)
