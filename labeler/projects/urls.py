from django.urls import path

from . import settings_views, views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/<int:project_id>/", views.project_detail, name="detail"),
    path("api/projects/<int:project_id>/status/", views.project_status, name="status"),
    path("projects/<int:project_id>/settings/", settings_views.project_settings, name="settings"),
]
