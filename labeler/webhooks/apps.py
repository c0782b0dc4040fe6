from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Per-project webhooks: signed event deliveries with retries and a log."""

    name = "labeler.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # The delivery task registers with Celery in every process that loads Django; the
        # signal receivers turn saved rows into events.
        from . import signals, tasks  # noqa: F401
