"""Items: list with filters (keyset pages), upload, import by URL, read, image, delete."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from labeler.items.importing import ImportReport, import_uploads, import_urls
from labeler.items.models import Item
from labeler.items.services import delete_item
from labeler.items.views import image_response
from labeler.projects.models import Project

from ..access import one_of
from ..pagination import IdCursorPagination
from ..renderers import BinaryRenderer
from ..serializers.items import (
    ImportReportSerializer,
    ItemFilterSerializer,
    ItemSerializer,
    UploadSerializer,
    UrlImportSerializer,
)
from .base import ProjectView

ITEM_FIELDS = (
    "id", "project_id", "original_name", "sha256", "width", "height", "created_at",
    "annotation_count", "current_label_id", "has_audit_label", "predicted_class_id",
    "predicted_confidence", "embed_error", "source",
)


def filtered_items(project: Project, query: dict) -> QuerySet[Item]:
    """Every filter is on a column of one of Item's (project, ..., id) indexes."""
    qs = Item.objects.filter(project=project).only(*ITEM_FIELDS)
    if query.get("labeled") is not None:
        qs = qs.filter(current_label__isnull=not query["labeled"])
    if query.get("audit") is not None:
        qs = qs.filter(has_audit_label=query["audit"])
    if "label" in query:
        qs = qs.filter(current_label_id=query["label"])
    if "predicted_class" in query:
        qs = qs.filter(predicted_class_id=query["predicted_class"])
    if "confidence_min" in query:
        qs = qs.filter(predicted_confidence__gte=query["confidence_min"])
    if "confidence_max" in query:
        qs = qs.filter(predicted_confidence__lte=query["confidence_max"])
    return qs


def report_payload(report: ImportReport) -> dict:
    return {**report.to_dict(), "item_ids": report.created}


class ItemList(ProjectView):
    lead_methods = frozenset({"get"})

    @extend_schema(parameters=[ItemFilterSerializer], responses=ItemSerializer(many=True),
                   summary="Items, filtered, in keyset pages (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        query = ItemFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        paginator = IdCursorPagination()
        page = paginator.paginate_queryset(filtered_items(project, query.validated_data),
                                           request, view=self)
        return paginator.get_paginated_response(ItemSerializer(page, many=True).data)


ItemList.pagination_class = IdCursorPagination  # for the schema's page envelope


class ItemUpload(ProjectView):
    lead_methods = frozenset({"post"})
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": UploadSerializer},
                   responses={201: ImportReportSerializer},
                   summary="Upload images or zip archives (lead)")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = UploadSerializer(data={"files": request.FILES.getlist("files")})
        body.is_valid(raise_exception=True)
        report = import_uploads(project, body.validated_data["files"], user=request.user)
        return Response(report_payload(report), status=status.HTTP_201_CREATED)


class ItemUrlImport(ProjectView):
    lead_methods = frozenset({"post"})

    @extend_schema(request=UrlImportSerializer, responses={201: ImportReportSerializer},
                   summary="Import images by URL (lead; private addresses refused)")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = UrlImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = import_urls(project, body.validated_data["urls"], user=request.user,
                             no_copy=body.validated_data["no_copy"])
        return Response(report_payload(report), status=status.HTTP_201_CREATED)


class ItemDetail(ProjectView):
    lead_methods = frozenset({"delete"})

    @extend_schema(responses=ItemSerializer, summary="One item")
    def get(self, request: Request, project_id: int, item_id: int) -> Response:
        project = self.project(request)
        item = one_of(Item.objects.filter(project=project).only(*ITEM_FIELDS), item_id, "item")
        return Response(ItemSerializer(item).data)

    @extend_schema(responses={204: None}, summary="Delete an item and its labels (lead)")
    def delete(self, request: Request, project_id: int, item_id: int) -> Response:
        project = self.project(request)
        delete_item(one_of(Item.objects.filter(project=project), item_id, "item"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemImage(ProjectView):
    renderer_classes = [BinaryRenderer]

    @extend_schema(responses={(200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY)},
                   summary="The item's image, typed by its content")
    def get(self, request: Request, project_id: int, item_id: int) -> FileResponse:
        project = self.project(request)
        item = one_of(Item.objects.filter(project=project).only("project_id", "image", "source"),
                      item_id, "item")
        return image_response(item)
