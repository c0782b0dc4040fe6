from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "labeler.training"
    label = "training"
    verbose_name = "Training"

