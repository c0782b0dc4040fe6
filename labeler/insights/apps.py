from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """The ML lead's view: dashboard, likely label errors, embedding map, exports."""

    name = "labeler.insights"
    label = "insights"
    verbose_name = "Insights"

