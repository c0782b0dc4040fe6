from django.urls import path

from . import views

app_name = "items"
urlpatterns = [
    path("items/<int:item_id>/image", views.item_image, name="image"),
]
