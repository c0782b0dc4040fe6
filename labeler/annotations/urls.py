from django.urls import path

from . import views

app_name = "annotations"
urlpatterns = [
    path("projects/<int:project_id>/label/", views.label_page, name="label"),
    path("api/projects/<int:project_id>/next/", views.api_next, name="next"),
    path("api/projects/<int:project_id>/annotations/", views.api_annotate, name="annotate"),
]
