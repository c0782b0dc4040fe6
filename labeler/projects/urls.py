from django.urls import path

from . import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/<int:project_id>/", views.project_detail, name="detail"),
    path("api/projects/<int:project_id>/status/", views.project_status, name="status"),
]
