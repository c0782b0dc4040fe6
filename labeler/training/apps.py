from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "labeler.training"
    label = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # Registers the sweep task with Celery in every process that loads Django (the worker
        # autodiscovers only worker.tasks).
        from . import tasks  # noqa: F401
