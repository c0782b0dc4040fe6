"""What every API view shares: the project from the URL, checked by the pages' access rule."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.views import APIView

from labeler.projects.models import Project

from ..access import project_for


class ProjectView(APIView):
    """A view under /projects/{project_id}/. Methods in `lead_methods` need the lead role (or
    staff); the others need membership. Non-members get 404, as on the pages."""

    lead_methods: frozenset[str] = frozenset()

    def project(self, request: Request) -> Project:
        lead = request.method.lower() in self.lead_methods
        return project_for(request, self.kwargs["project_id"], lead=lead)
