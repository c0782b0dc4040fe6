"""/api/v1/: DRF views (token or session auth: the site's login redirect does not apply)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from .views import exports, items, labels, projects, training, webhooks

P = "projects/<int:project_id>/"


def api(view, name: str):
    # DRF authenticates inside the view (bearer tokens included), and answers 401/403 itself.
    return path(view[0], login_not_required(view[1].as_view()), name=name)


app_name = "api"
urlpatterns = [
    api(("projects/", projects.ProjectList), "projects"),
    api((P, projects.ProjectDetail), "project"),
    api((P + "status/", projects.ProjectStatus), "status"),
    api((P + "classes/", projects.ClassList), "classes"),
    api((P + "classes/<int:class_id>/", projects.ClassDetail), "class"),
    api((P + "members/", projects.MemberList), "members"),
    api((P + "members/<int:user_id>/", projects.MemberDetail), "member"),
    api((P + "items/", items.ItemList), "items"),
    api((P + "items/upload/", items.ItemUpload), "items-upload"),
    api((P + "items/import-urls/", items.ItemUrlImport), "items-import-urls"),
    api((P + "items/<int:item_id>/", items.ItemDetail), "item"),
    api((P + "items/<int:item_id>/image/", items.ItemImage), "item-image"),
    api((P + "annotations/", labels.AnnotationList), "annotations"),
    api((P + "annotations/bulk/", labels.AnnotationBulk), "annotations-bulk"),
    api((P + "predictions/", labels.PredictionList), "predictions"),
    api((P + "next/", labels.NextItems), "next"),
    api((P + "skip/", labels.SkipItem), "skip"),
    api((P + "model-versions/", training.ModelVersionList), "model-versions"),
    api((P + "model-versions/<int:number>/", training.ModelVersionDetail), "model-version"),
    api((P + "model-versions/<int:number>/head/", training.ModelVersionHead), "model-head"),
    api((P + "retrain/", training.Retrain), "retrain"),
    api((P + "exports/", exports.ExportList), "exports"),
    api((P + "exports/<int:job_id>/", exports.ExportDetail), "export"),
    api((P + "exports/<int:job_id>/download/", exports.ExportDownload), "export-download"),
    api((P + "webhooks/", webhooks.WebhookList), "webhooks"),
    api((P + "webhooks/<int:webhook_id>/", webhooks.WebhookDetail), "webhook"),
    api((P + "webhooks/<int:webhook_id>/deliveries/", webhooks.DeliveryList), "deliveries"),
    path("schema/", login_not_required(SpectacularJSONAPIView.as_view()), name="schema"),
    # The docs are a page: without a session the site's login page comes first.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
