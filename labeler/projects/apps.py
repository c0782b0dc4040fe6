from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "labeler.projects"
    label = "projects"
    verbose_name = "Projects"
