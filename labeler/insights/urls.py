from django.urls import path

from . import browse_views, views

app_name = "insights"
urlpatterns = [
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="dashboard"),
    path("projects/<int:project_id>/label-errors/", views.label_errors, name="label_errors"),
    path("projects/<int:project_id>/map/", views.embedding_map, name="map"),
    path("projects/<int:project_id>/items/<int:item_id>/", views.item_detail, name="item"),
    path("projects/<int:project_id>/items/", browse_views.item_table, name="items"),
    path("projects/<int:project_id>/export/<str:fmt>/", views.export, name="export"),
    path("api/projects/<int:project_id>/map/", views.map_data, name="map_data"),
    path("api/projects/<int:project_id>/items/<int:item_id>/relabel/", views.relabel,
         name="relabel"),
    path("items/<int:item_id>/thumb", views.thumb, name="thumb"),
]
