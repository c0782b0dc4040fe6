"""Webhooks of a project (lead): create, list, change, delete, and the delivery log."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from labeler.webhooks import services
from labeler.webhooks.models import Webhook

from ..access import one_of
from ..pagination import IdCursorPagination
from ..serializers.webhooks import (
    DeliverySerializer,
    WebhookCreatedSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWriteSerializer,
)
from .base import ProjectView

LEAD = frozenset({"get", "post", "patch", "delete"})


class WebhookList(ProjectView):
    lead_methods = LEAD

    @extend_schema(responses=WebhookSerializer(many=True), summary="Webhooks (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        return Response(WebhookSerializer(self.project(request).webhooks.all(), many=True).data)

    @extend_schema(request=WebhookWriteSerializer, responses={201: WebhookCreatedSerializer},
                   summary="Add a webhook (lead); its secret is in this answer only")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = WebhookWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        hook = services.create_webhook(project, data["url"], data["events"],
                                       secret=data.get("secret", ""), user=request.user)
        if not data.get("active", True):
            services.update_webhook(hook, active=False)
        return Response(WebhookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)


class WebhookView(ProjectView):
    lead_methods = LEAD

    def hook(self, request: Request, webhook_id: int) -> Webhook:
        return one_of(self.project(request).webhooks.all(), webhook_id, "webhook")


class WebhookDetail(WebhookView):

    @extend_schema(responses=WebhookSerializer, summary="One webhook (lead)")
    def get(self, request: Request, project_id: int, webhook_id: int) -> Response:
        return Response(WebhookSerializer(self.hook(request, webhook_id)).data)

    @extend_schema(request=WebhookUpdateSerializer, responses=WebhookSerializer,
                   summary="Change a webhook (lead)")
    def patch(self, request: Request, project_id: int, webhook_id: int) -> Response:
        hook = self.hook(request, webhook_id)
        body = WebhookUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(WebhookSerializer(services.update_webhook(hook, **body.validated_data)).data)

    @extend_schema(responses={204: None}, summary="Delete a webhook and its log (lead)")
    def delete(self, request: Request, project_id: int, webhook_id: int) -> Response:
        self.hook(request, webhook_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryList(WebhookView):
    @extend_schema(responses=DeliverySerializer(many=True),
                   summary="The webhook's delivery log, newest first (lead)")
    def get(self, request: Request, project_id: int, webhook_id: int) -> Response:
        hook = self.hook(request, webhook_id)
        paginator = IdCursorPagination()
        paginator.ordering = "-id"
        page = paginator.paginate_queryset(hook.deliveries.all(), request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


DeliveryList.pagination_class = IdCursorPagination
