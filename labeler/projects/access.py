"""Who may do what on a project. Every view goes through these checks (server-side roles)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from labeler.request_input import ID_MAX

from .models import Membership, Project, Role

User = AbstractBaseUser | AnonymousUser


def visible_projects(user: User) -> QuerySet[Project]:
    """Staff see every project; everyone else only those they belong to."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def role_of(user: User, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return Role.LEAD
    membership = Membership.objects.filter(project=project, user=user).only("role").first()
    return membership.role if membership else None


def get_project_for(user: User, project_id: int, *, lead: bool = False) -> Project:
    """The project if `user` may see it (404 otherwise: don't reveal it exists).

    With lead=True, annotators get 403: they know the project but may not manage it.
    """
    if not user.is_authenticated or not 0 < int(project_id) <= ID_MAX:
        raise Http404("No such project.")  # an id past 64 bits would overflow the query
    if user.is_staff:
        project, role = Project.objects.filter(pk=project_id).first(), Role.LEAD
    else:
        # One hand-written query for both: this runs on every API call of the labeling page,
        # where the ORM's query building cost more than the database.
        found = list(Project.objects.raw(
            f"SELECT p.*, m.role AS member_role FROM {Project._meta.db_table} p"
            f" JOIN {Membership._meta.db_table} m ON m.project_id = p.id"
            " WHERE p.id = %s AND m.user_id = %s",
            [int(project_id), user.pk],
        ))
        project = found[0] if found else None
        role = project.member_role if project else None
    if project is None or role is None:
        raise Http404("No such project.")
    if lead and role != Role.LEAD:
        raise PermissionDenied("Only the project's leads may do this.")
    return project


def find_project(key: str) -> Project | None:
    """A project by name, or by id when `key` is a number (for management commands)."""
    project = Project.objects.filter(name=key).first()
    if project is None and key.isdigit():
        project = Project.objects.filter(pk=int(key)).first()
    return project
