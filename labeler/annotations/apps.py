from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "labeler.annotations"
    label = "annotations"
    verbose_name = "Annotations"
