"""The API's role checks are the pages' (labeler.projects.access.get_project_for): a project
the caller may not see is a 404, one they may see but not manage a 403."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework.request import Request

from labeler.projects.access import get_project_for
from labeler.projects.models import Project
from labeler.request_input import ID_MAX

M = TypeVar("M", bound=Model)


def project_for(request: Request, project_id: int, *, lead: bool = False) -> Project:
    return get_project_for(request.user, project_id, lead=lead)


def one_of(queryset: QuerySet[M], pk: int, what: str = "object") -> M:
    """The row `pk` of `queryset` (already limited to one project), else 404."""
    if not 0 < int(pk) <= ID_MAX:
        raise Http404(f"No such {what}.")
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"No such {what} in this project.")
    return found

