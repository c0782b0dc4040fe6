"""The current-label rule, in one place: which label an item has now.

**A lead's label wins** (the latest one if several leads labelled): that is how label errors get
corrected. A *lead* of a project is a member with the LEAD role, or a staff user (staff act as a
lead on every project: labeler.projects.access.role_of). **Otherwise the majority** over the
annotators decides, **the latest label breaking ties**.

Used by the retrain (its training labels), exports, the map, label errors, the dashboard and the
admin. :func:`refresh_items` keeps ``Item.current_label`` and ``Item.has_audit_label`` equal to
the rule, so that the lead's item table filters on indexed columns; every function in
labeler.annotations.services that changes labels calls it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Case, Q, QuerySet, Subquery, When

from labeler.items.models import Item
from labeler.projects.models import LabelSet, Membership, Project, Role, SetKind

from .models import Annotation

#: The rule in words (exports state it beside the labels).
RULE = ("a lead's label wins (the latest if several leads labelled; leads are the project's "
        "lead members and staff users); otherwise the majority of annotators, the latest label "
        "breaking ties")


def leads(project) -> QuerySet:
    """Ids of the users whose label wins on ``project`` (a Project, an id or an OuterRef), as
    a subquery: the project's LEAD members, and staff."""
    return get_user_model().objects.filter(
        Q(is_staff=True) | Q(memberships__project=project, memberships__role=Role.LEAD)
    ).values("pk")


def lead_ids(project: Project | int, among: Iterable[int] | None = None) -> set[int]:
    """The leads of ``project`` (only those ``among`` these users, when given: the label save
    asks about an item's few annotators, not about every user)."""
    members = Membership.objects.filter(project=project, role=Role.LEAD)
    staff = get_user_model().objects.filter(is_staff=True)
    if among is not None:
        among = [u for u in among if u is not None]
        if not among:
            return set()
        members, staff = members.filter(user_id__in=among), staff.filter(pk__in=among)
    return (set(members.values_list("user_id", flat=True))
            | set(staff.values_list("pk", flat=True)))


def label_of(votes: list[tuple[int, object, bool]]) -> int | None:
    """The current label of one item from its (label id, created_at, by a lead) votes."""
    if not votes:
        return None
    by_leads = [v for v in votes if v[2]]
    if by_leads:
        return max(by_leads, key=lambda v: v[1])[0]
    counts = Counter(label for label, _, _ in votes)
    best = max(counts.values())
    tied = {label for label, c in counts.items() if c == best}
    return max((v for v in votes if v[0] in tied), key=lambda v: v[1])[0]


def primary_set_id(project_id: int) -> Subquery:
    """The id of the set the items' label columns follow (labeler.projects.label_sets.primary_set)
    as a subquery, so that reading one set's votes costs no extra round trip. The other sets'
    current answers: labeler.annotations.set_labels."""
    return Subquery(_primary_set(project_id))


def _primary_set(project_id: int) -> QuerySet:
    return (
        LabelSet.objects.filter(project_id=project_id, removed_at__isnull=True)
        .order_by(Case(When(kind=SetKind.MULTI, then=1), default=0), "order", "id")
        .values("id")[:1]
    )


def current_columns(project_id: int, item_ids: Iterable[int]) -> dict[int, tuple[int | None, bool]]:
    """Item id -> (current label id, has an audit label) by the rule: one statement that reads
    the votes of the primary set with each voter's lead status (`leads`). Assembled from two
    compiled querysets: it runs in every label save, and building the equivalent ORM query
    with a correlated subquery cost more than running it."""
    ids = list(item_ids)
    if not ids:
        return {}
    primary, primary_params = _primary_set(project_id).query.sql_with_params()
    lead, lead_params = leads(project_id).query.sql_with_params()
    sql = (
        f"SELECT a.item_id, a.label_id, a.created_at, a.is_audit, a.annotator_id IN ({lead})"
        f" FROM {Annotation._meta.db_table} a"
        f" WHERE a.item_id IN ({', '.join(['%s'] * len(ids))}) AND a.label_set_id = ({primary})"
    )
    votes: dict[int, list[tuple[int, object, bool]]] = {i: [] for i in ids}
    audit: set[int] = set()
    with connection.cursor() as cursor:
        cursor.execute(sql, [*lead_params, *ids, *primary_params])
        for item_id, label_id, created, is_audit, by_lead in cursor.fetchall():
            votes[item_id].append((label_id, created, bool(by_lead)))
            if is_audit:
                audit.add(item_id)
    return {item_id: (label_of(item_votes), item_id in audit)
            for item_id, item_votes in votes.items()}


def refresh_items(project_id: int, item_ids: Iterable[int]) -> None:
    """Recompute the denormalised label columns of these items (one query, one update each).
    They follow the project's primary label set."""
    for item_id, (label_id, audit) in current_columns(project_id, item_ids).items():
        Item.objects.filter(pk=item_id).update(current_label_id=label_id, has_audit_label=audit)


def refresh_project(project_id: int, chunk: int = 2000) -> None:
    """Every labelled item of a project (after a lead is added or removed, and the backfill)."""
    labelled = (
        Annotation.objects.filter(item__project_id=project_id).order_by("item_id")
        .values_list("item_id", flat=True).distinct()
    )
    batch: list[int] = []
    for item_id in labelled.iterator(chunk):
        batch.append(item_id)
        if len(batch) >= chunk:
            refresh_items(project_id, batch)
            batch = []
    refresh_items(project_id, batch)


def current_labels(project: Project | int) -> tuple[dict[int, int], set[int]]:
    """Item id -> current label id of every labelled item, and the items with an audit label
    (the primary label set's; the other sets: labeler.annotations.set_labels)."""
    by_lead = lead_ids(project)
    project_id = project if isinstance(project, int) else project.pk
    votes: dict[int, list[tuple[int, object, bool]]] = defaultdict(list)
    audit: set[int] = set()
    for item_id, label_id, is_audit, created, annotator in Annotation.objects.filter(
        item__project=project, label_set_id=primary_set_id(project_id)
    ).values_list("item_id", "label_id", "is_audit", "created_at", "annotator_id"):
        if label_id is None:  # a multi-label primary set: its tags are learnt per set
            continue
        votes[item_id].append((label_id, created, annotator in by_lead))
        if is_audit:
            audit.add(item_id)
    return {item_id: label_of(item_votes) for item_id, item_votes in votes.items()}, audit
