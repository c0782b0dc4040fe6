from django.urls import path

from . import views

app_name = "webhooks"
urlpatterns = [
    path("projects/<int:project_id>/webhooks/", views.webhooks_page, name="page"),
]
