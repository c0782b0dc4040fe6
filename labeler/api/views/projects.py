"""Projects, label classes and members."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeler.projects import services
from labeler.projects.access import visible_projects
from labeler.projects.models import Membership
from labeler.projects.views import status_payload
from labeler.request_input import ID_MAX

from ..access import one_of
from ..serializers.projects import (
    LabelClassCreateSerializer,
    LabelClassSerializer,
    LabelClassUpdateSerializer,
    MemberSerializer,
    MemberWriteSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectSettingsSerializer,
    RoleSerializer,
    StatusSerializer,
)
from .base import ProjectView


class ProjectList(APIView):
    @extend_schema(responses=ProjectSerializer(many=True), summary="Projects the caller sees")
    def get(self, request: Request) -> Response:
        projects = visible_projects(request.user).prefetch_related("classes")
        return Response(ProjectSerializer(projects, many=True, context={"request": request}).data)

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer},
                   summary="Create a project (staff); the caller becomes its lead")
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff create projects.")
        body = ProjectCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        classes, name = data.pop("classes"), data.pop("name")
        with transaction.atomic():
            project = services.create_project(name, classes, lead=request.user)
            if data:
                services.update_settings(project, **data)
        return Response(ProjectSerializer(project, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class ProjectDetail(ProjectView):
    lead_methods = frozenset({"patch"})

    @extend_schema(responses=ProjectSerializer, summary="A project with its classes")
    def get(self, request: Request, project_id: int) -> Response:
        return Response(ProjectSerializer(self.project(request), context={"request": request}).data)

    @extend_schema(request=ProjectSettingsSerializer, responses=ProjectSerializer,
                   summary="Change a project's settings (lead)")
    def patch(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = ProjectSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data:
            services.update_settings(project, **body.validated_data)
        return Response(ProjectSerializer(project, context={"request": request}).data)


class ProjectStatus(ProjectView):
    @extend_schema(responses=StatusSerializer, summary="Embedding progress, labels, model")
    def get(self, request: Request, project_id: int) -> Response:
        return Response(status_payload(self.project(request)))


class ClassList(ProjectView):
    lead_methods = frozenset({"post"})

    @extend_schema(responses=LabelClassSerializer(many=True), summary="Label classes")
    def get(self, request: Request, project_id: int) -> Response:
        return Response(LabelClassSerializer(self.project(request).classes.all(), many=True).data)

    @extend_schema(request=LabelClassCreateSerializer, responses={201: LabelClassSerializer},
                   summary="Add a class (lead)")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = LabelClassCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label = services.add_class(project, body.validated_data["name"].strip())
        return Response(LabelClassSerializer(label).data, status=status.HTTP_201_CREATED)


class ClassDetail(ProjectView):
    lead_methods = frozenset({"patch"})

    @extend_schema(request=LabelClassUpdateSerializer, responses=LabelClassSerializer,
                   summary="Rename a class or change its hotkey (lead)")
    def patch(self, request: Request, project_id: int, class_id: int) -> Response:
        project = self.project(request)
        label = one_of(project.classes.all(), class_id, "class")
        body = LabelClassUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            if "name" in body.validated_data:
                services.rename_class(label, body.validated_data["name"])
            if "hotkey" in body.validated_data:
                services.set_hotkey(label, body.validated_data["hotkey"])
        return Response(LabelClassSerializer(label).data)


class MemberList(ProjectView):
    lead_methods = frozenset({"get", "post"})

    @extend_schema(responses=MemberSerializer(many=True), summary="Members and roles (lead)")
    def get(self, request: Request, project_id: int) -> Response:
        members = self.project(request).memberships.select_related("user").order_by("user_id")
        return Response(MemberSerializer(members, many=True).data)

    @extend_schema(request=MemberWriteSerializer, responses={201: MemberSerializer},
                   summary="Add a member or change their role (lead)")
    def post(self, request: Request, project_id: int) -> Response:
        project = self.project(request)
        body = MemberWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.set_member(
            project, body.validated_data["username"], body.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(ProjectView):
    lead_methods = frozenset({"patch", "delete"})

    def _membership(self, request: Request, user_id: int) -> Membership:
        project = self.project(request)
        if not 0 < user_id <= ID_MAX:
            raise Http404("No such member.")
        membership = project.memberships.select_related("user").filter(user_id=user_id).first()
        if membership is None:
            raise Http404("No such member of this project.")
        return membership

    @extend_schema(request=RoleSerializer, responses=MemberSerializer,
                   summary="Change a member's role (lead)")
    def patch(self, request: Request, project_id: int, user_id: int) -> Response:
        membership = self._membership(request, user_id)
        body = RoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.set_member(
            membership.project, membership.user, body.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member (lead)")
    def delete(self, request: Request, project_id: int, user_id: int) -> Response:
        membership = self._membership(request, user_id)
        services.remove_member(membership.project, membership.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
