from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """The ML lead's view: dashboard, likely label errors, embedding map, exports."""

    name = "labeler.insights"
    label = "insights"
    verbose_name = "Insights"

    def ready(self) -> None:
        # Registers the projection task with Celery in every process that loads Django (the
        # worker autodiscovers only worker.tasks).
        from . import tasks  # noqa: F401
