"""Keeps ``Item.current_label`` and ``Item.has_audit_label`` equal to what the annotations say,
so that the lead's item table filters on indexed columns instead of recomputing every label.

The rule is the retrain's (worker.tasks._current_labels): a lead's label is authoritative (the
latest one if several leads labelled), otherwise the majority over annotators, the latest label
breaking ties. Called by every function in labeler.annotations.services that changes labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db.models import Case, Subquery, When

from labeler.items.models import Item
from labeler.projects.models import LabelSet, Membership, Role, SetKind

from .models import Annotation


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
    as a subquery, so that reading one set's votes costs no extra round trip."""
    return Subquery(
        LabelSet.objects.filter(project_id=project_id, removed_at__isnull=True)
        .order_by(Case(When(kind=SetKind.MULTI, then=1), default=0), "order", "id")
        .values("id")[:1]
    )


def refresh_items(project_id: int, item_ids: Iterable[int]) -> None:
    """Recompute the denormalised label columns of these items (a few queries per call).
    They follow the project's primary label set."""
    ids = list(item_ids)
    if not ids:
        return
    leads = set(
        Membership.objects.filter(project_id=project_id, role=Role.LEAD)
        .values_list("user_id", flat=True)
    )
    votes: dict[int, list[tuple[int, object, bool]]] = {i: [] for i in ids}
    audit: set[int] = set()
    for item_id, label_id, created, annotator, is_audit in (
        Annotation.objects.filter(item_id__in=ids, label_set_id=primary_set_id(project_id))
        .order_by()
        .values_list("item_id", "label_id", "created_at", "annotator_id", "is_audit")
    ):
        votes[item_id].append((label_id, created, annotator in leads))
        if is_audit:
            audit.add(item_id)
    for item_id, item_votes in votes.items():
        Item.objects.filter(pk=item_id).update(
            current_label_id=label_of(item_votes), has_audit_label=item_id in audit
        )


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
