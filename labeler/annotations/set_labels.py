"""The current answer of every item in every label set: the exports' and the per-set heads' labels.

The rule is the one of labeler.annotations.current, per set: a lead's answer is authoritative,
otherwise the majority over annotators, the latest answer breaking ties. In a multi-label set the
answer is the whole set of tags (frozenset), so that "no tags" is an answer like any other.
"""

from __future__ import annotations

from collections import defaultdict

from labeler.projects.models import LabelSet, Project

from .current import label_of, lead_ids
from .models import Annotation

Answer = int | frozenset[int]


def labels_per_set(
    project: Project, *, include_removed: bool = True, only: int | None = None,
    items: list[int] | None = None, chunk: int = 5000,
) -> dict[int, dict[int, Answer]]:
    """Set id -> (item id -> class id, or frozenset of tag ids in a multi-label set); ``only``:
    just that set; ``items``: just those items. Reads answers, never the pool: it grows with
    the labels."""
    sets = LabelSet.objects.filter(project=project)
    if only is not None:
        sets = sets.filter(pk=only)
    if not include_removed:
        sets = sets.filter(removed_at__isnull=True)
    kinds = dict(sets.values_list("pk", "kind"))
    leads = lead_ids(project)
    multi = [pk for pk, kind in kinds.items() if kind == "multi"]
    tags: dict[int, set[int]] = defaultdict(set)
    tag_rows = Annotation.tags.through.objects.filter(annotation__label_set_id__in=multi)
    answers = Annotation.objects.filter(label_set_id__in=list(kinds))
    if items is not None:
        tag_rows = tag_rows.filter(annotation__item_id__in=items)
        answers = answers.filter(item_id__in=items)
    for annotation_id, tag in tag_rows.values_list("annotation_id", "labelclass_id").iterator(chunk):
        tags[annotation_id].add(tag)
    votes: dict[int, dict[int, list]] = {pk: defaultdict(list) for pk in kinds}
    for pk, item_id, set_id, label_id, created, annotator in answers.order_by().values_list(
        "pk", "item_id", "label_set_id", "label_id", "created_at", "annotator_id"
    ).iterator(chunk):
        value = frozenset(tags.get(pk, ())) if set_id in multi else label_id
        votes[set_id][item_id].append((value, created, annotator in leads))
    return {
        set_id: {item_id: label_of(v) for item_id, v in by_item.items()}
        for set_id, by_item in votes.items()
    }
