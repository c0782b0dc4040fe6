"""Export jobs: start one in any format, poll it, download its file."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from labeler.insights import export_jobs, exports
from labeler.training.models import Job

from ..access import one_of
from ..errors import conflict
from ..renderers import BinaryRenderer
from ..serializers.exports import ExportJobSerializer, ExportRequestSerializer
from .base import ProjectView

LEAD = frozenset({"get", "post"})


class ExportList(ProjectView):
    lead_methods = LEAD

    @extend_schema(responses=ExportJobSerializer(many=True),
                   summary="The project's export jobs, newest first (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        jobs = self.project(request).jobs.filter(kind=Job.Kind.EXPORT).order_by("-id")[:100]
        return Response(ExportJobSerializer(jobs, many=True).data)

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportJobSerializer},
                   summary="Start an export job (lead); poll it, then download its file")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            job = export_jobs.start_export(project, data["format"], version=data.get("version"),
                                           unlabeled=data["unlabeled"])
        except exports.ExportError as exc:
            return conflict(str(exc))
        if job is None:
            return conflict("An export of this project is already running: wait for it.")
        return Response(ExportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDetail(ProjectView):
    lead_methods = LEAD

    @extend_schema(responses=ExportJobSerializer, summary="An export job's state (lead)")
    def get(self, request: Request, project_id: int, job_id: int) -> Response:
        project = self.project(request)
        job = one_of(project.jobs.filter(kind=Job.Kind.EXPORT), job_id, "export")
        return Response(ExportJobSerializer(job).data)


class ExportDownload(ProjectView):
    lead_methods = LEAD
    renderer_classes = [BinaryRenderer]

    @extend_schema(responses={(200, "application/octet-stream"):
                              OpenApiResponse(OpenApiTypes.BINARY)},
                   summary="A finished export's file (lead)")
    def get(self, request: Request, project_id: int, job_id: int):
        project = self.project(request)
        job = one_of(project.jobs.filter(kind=Job.Kind.EXPORT), job_id, "export")
        path = export_jobs.file_of(job)
        if path is None:
            return conflict(f"Export {job.pk} is {job.status}: no file to download"
                            + (" (replaced by newer exports)." if job.status == "done" else "."))
        fmt = job.params["format"]
        response = FileResponse(path.open("rb"), content_type=exports.FORMATS[fmt][0],
                                as_attachment=True, filename=exports.filename_for(project, fmt))
        response["X-Content-Type-Options"] = "nosniff"
        return response
