"""Annotations (one, bulk, list), predictions (import, read) and the labeling queue."""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from labeler.annotations.models import Annotation, Source
from labeler.annotations.queue import next_items
from labeler.annotations.services import save_annotation, skip_item
from labeler.annotations.views import item_and_label
from labeler.insights import services as insights
from labeler.insights.export_base import ExportError, ready_head
from labeler.items.models import Item
from labeler.training.services import request_retrain_if_due

from ..access import one_of
from ..errors import conflict
from ..pagination import IdCursorPagination
from ..serializers.labels import (
    AnnotationCreateSerializer,
    AnnotationFilterSerializer,
    AnnotationResultSerializer,
    AnnotationSerializer,
    BulkAnnotationSerializer,
    BulkPredictionSerializer,
    BulkResultSerializer,
    NextRequestSerializer,
    NextResponseSerializer,
    PredictionPageSerializer,
    SkipSerializer,
)
from .base import ProjectView


class AnnotationList(ProjectView):
    lead_methods = frozenset({"get"})

    @extend_schema(parameters=[AnnotationFilterSerializer],
                   responses=AnnotationSerializer(many=True),
                   summary="Annotations, in keyset pages (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        query = AnnotationFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = {f"{k}_id" if k != "source" else k: v for k, v in query.validated_data.items()}
        qs = Annotation.objects.filter(item__project=project, **filters)
        paginator = IdCursorPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(AnnotationSerializer(page, many=True).data)

    @extend_schema(request=AnnotationCreateSerializer,
                   responses={201: AnnotationResultSerializer, 200: AnnotationResultSerializer},
                   summary="Label an item (idempotent with client_id)")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = AnnotationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        found = item_and_label(project, data["item"], data["label"])
        if found is None:
            raise NotFound("Unknown item or class for this project.")
        annotation, created = save_annotation(
            *found, request.user, seconds_spent=data.get("seconds") or 0.0,
            client_id=data.get("client_id"),
        )
        annotation.created = created
        return Response(AnnotationResultSerializer(annotation).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


AnnotationList.pagination_class = IdCursorPagination


class AnnotationBulk(ProjectView):
    lead_methods = frozenset({"post"})

    @extend_schema(request=BulkAnnotationSerializer, responses=BulkResultSerializer,
                   summary="Import existing labels (lead): all or none")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = BulkAnnotationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rows = body.validated_data["annotations"]
        items = Item.objects.filter(project=project, pk__in={r["item"] for r in rows}).only(
            "id", "project_id", "leased_by_id", "lease_is_audit")
        items = {i.pk: i for i in items}
        classes = list(project.classes.all())
        by_id, by_name = {c.pk: c for c in classes}, {c.name: c for c in classes}
        errors = {}
        for n, row in enumerate(rows):
            label = by_id.get(row["label"]) if "label" in row else by_name.get(row["class_name"])
            if row["item"] not in items:
                errors[str(n)] = f"item {row['item']} is not in this project"
            elif label is None:
                errors[str(n)] = "unknown class for this project"
            row["_label"] = label
        if errors:
            raise ValidationError({"annotations": errors})
        created = 0
        with transaction.atomic():
            for row in rows:
                _, was_created = save_annotation(
                    items[row["item"]], row["_label"], request.user, source=Source.IMPORT,
                    client_id=row.get("client_id"), trigger_retrain=False,
                )
                created += was_created
            transaction.on_commit(lambda: request_retrain_if_due(project.pk))
        return Response({"created": created, "updated": len(rows) - created})


class PredictionList(ProjectView):
    lead_methods = frozenset({"get", "post"})

    @extend_schema(responses={200: PredictionPageSerializer},
                   summary="The current model's per-class probabilities, in keyset pages (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        try:
            version, bundle = ready_head(project)
        except ExportError as exc:
            return conflict(str(exc))
        paginator = IdCursorPagination()
        page = paginator.paginate_queryset(
            Item.objects.filter(project=project).only("id", "current_label_id"), request, self)
        head_classes = [int(c) for c in bundle["classes"]]
        ids = np.array([i.pk for i in page], dtype=np.int64)
        have, matrix = insights.store_of(project, bundle.get("backbone")).load()
        pos = np.minimum(np.searchsorted(have, ids), max(len(have) - 1, 0))
        found = have[pos] == ids if len(have) else np.zeros(len(ids), bool)
        proba = (bundle["head"].predict_proba(np.asarray(matrix[pos[found]], dtype=np.float32))
                 if found.any() else np.zeros((0, len(head_classes))))
        results, k = [], 0
        for item, ok in zip(page, found.tolist(), strict=True):
            row = {"item": item.pk, "label": item.current_label_id, "predicted_class": None,
                   "confidence": None, "probabilities": None}
            if ok:
                p = proba[k]
                k += 1
                best = int(p.argmax())
                row.update(predicted_class=head_classes[best], confidence=round(float(p[best]), 6),
                           probabilities={str(c): round(float(x), 6)
                                          for c, x in zip(head_classes, p, strict=True)})
            results.append(row)
        response = paginator.get_paginated_response(results)
        response.data = {"model_version": version.number, **response.data}
        return response

    @extend_schema(request=BulkPredictionSerializer, responses=BulkResultSerializer,
                   summary="Import an external model's predictions as suggestions (lead)")
    def post(self, request: Request, project_id: int) -> Response:
        """Shown to annotators as suggestions until the next retrain predicts anew."""
        project = self.project(request)
        body = BulkPredictionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rows = body.validated_data["predictions"]
        items = {i.pk: i for i in Item.objects.filter(
            project=project, pk__in={r["item"] for r in rows}).only("id")}
        classes = set(project.classes.values_list("pk", flat=True))
        errors = {str(n): "unknown item or class for this project" for n, r in enumerate(rows)
                  if r["item"] not in items or r["label"] not in classes}
        if errors:
            raise ValidationError({"predictions": errors})
        for row in rows:
            item = items[row["item"]]
            item.predicted_class_id, item.predicted_confidence = row["label"], row["confidence"]
        Item.objects.bulk_update(list(items.values()),
                                 ["predicted_class", "predicted_confidence"], batch_size=500)
        return Response({"created": 0, "updated": len(items)})


class NextItems(ProjectView):
    @extend_schema(request=NextRequestSerializer, responses=NextResponseSerializer,
                   summary="Lease the next items to label (the labeling page's queue)")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = NextRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        items = next_items(project, request.user, body.validated_data["n"],
                           exclude=body.validated_data["exclude"])
        return Response({"items": [{
            "id": i.pk, "name": i.original_name, "width": i.width, "height": i.height,
            "image_url": reverse("api:item-image", args=[project.pk, i.pk]),
            "suggestion": None if i.predicted_class_id is None else {
                "label": i.predicted_class_id,
                "confidence": round(float(i.predicted_confidence or 0.0), 4)},
            "lease_expires_in": project.lease_seconds,
        } for i in items]})


class SkipItem(ProjectView):
    @extend_schema(request=SkipSerializer, responses={204: None},
                   summary="Pass on an item: never served to you again")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = SkipSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = one_of(Item.objects.filter(project=project), body.validated_data["item"], "item")
        skip_item(item, request.user, body.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)
