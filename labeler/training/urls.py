from django.urls import path

from . import views

app_name = "training"
urlpatterns = [
    path("projects/<int:project_id>/backbone-check/", views.run_check, name="run_check"),
    path("api/projects/<int:project_id>/backbone-check/", views.check_status, name="check_status"),
]
