"""Model versions: list with metrics, the head's download, retrain requests."""

from __future__ import annotations

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from labeler.insights import exports
from labeler.projects.models import Project
from labeler.request_input import ID_MAX
from labeler.training.models import ModelVersion
from labeler.training.services import request_retrain, retraining

from ..errors import conflict
from ..renderers import BinaryRenderer
from ..serializers.training import ModelVersionSerializer, RetrainSerializer
from .base import ProjectView


def version_of(project: Project, number: int) -> ModelVersion:
    version = (project.model_versions.filter(number=number).first()
               if 0 < number <= ID_MAX else None)
    if version is None:
        raise Http404("No such model version in this project.")
    return version


class ModelVersionList(ProjectView):
    lead_methods = frozenset({"get"})

    @extend_schema(responses=ModelVersionSerializer(many=True),
                   summary="Model versions with their metrics, newest first (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        versions = self.project(request).model_versions.order_by("-number")
        return Response(ModelVersionSerializer(versions, many=True).data)


class ModelVersionDetail(ProjectView):
    lead_methods = frozenset({"get"})

    @extend_schema(responses=ModelVersionSerializer, summary="One model version (lead)")
    def get(self, request: Request, project_id: int, number: int) -> Response:
        return Response(ModelVersionSerializer(version_of(self.project(request), number)).data)


class ModelVersionHead(ProjectView):
    lead_methods = frozenset({"get"})
    renderer_classes = [BinaryRenderer]

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY),
                              (409, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT)},
                   summary="Download a ready version's head (zip: head.joblib, classes.json, "
                           "README.md with inference code) (lead)")
    def get(self, request: Request, project_id: int, number: int):
        project = self.project(request)
        version = version_of(project, number)
        try:
            stream = exports.export_model(project, version.number)
        except exports.ExportError as exc:
            return conflict(str(exc))
        response = StreamingHttpResponse(stream, content_type="application/zip")
        name = exports.filename_for(project, "model").removesuffix(".zip")
        response["Content-Disposition"] = f'attachment; filename="{name}-v{version.number}.zip"'
        response["X-Content-Type-Options"] = "nosniff"
        return response


class Retrain(ProjectView):
    lead_methods = frozenset({"post"})

    @extend_schema(request=None, responses={202: RetrainSerializer},
                   summary="Request a retrain now (lead); poll /status/ or wait for the "
                           "model_version.ready webhook")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        if not project.classes.exists():
            return conflict("The project has no classes.")
        queued = request_retrain(project)
        return Response({"queued": queued, "retraining": retraining(project)},
                        status=status.HTTP_202_ACCEPTED)
