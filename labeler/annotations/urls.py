from django.urls import path

from . import views

app_name = "annotations"
urlpatterns = [
    path("projects/<int:project_id>/label/", views.label_page, name="label"),
    path("api/projects/<int:project_id>/next/", views.api_next, name="next"),
    path("api/projects/<int:project_id>/annotations/", views.api_annotate, name="annotate"),
    path("api/projects/<int:project_id>/skips/", views.api_skip, name="skip"),
    path("projects/<int:project_id>/grid/", views.grid_page, name="grid"),
    path("api/projects/<int:project_id>/grid/items/", views.api_grid_items, name="grid_items"),
    path("api/projects/<int:project_id>/grid/confirm/", views.api_grid_confirm, name="grid_confirm"),
]
