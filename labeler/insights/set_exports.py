"""Every label set in the exports: a CSV column per set (tags joined by ``|``), a nested ``sets``
list per item in JSON, a folder per set in the folders zip. Removed sets are included until a
lead deletes them. A project with one set exports exactly as before."""

from __future__ import annotations

from labeler.annotations.models import Annotation
from labeler.annotations.set_labels import labels_per_set
from labeler.projects.label_sets import primary_set
from labeler.projects.models import LabelClass, LabelSet, Project

from .export_base import _safe

TAG_SEPARATOR = "|"


class SetAnswers:
    """The current answers of every set, shaped for each export format."""

    def __init__(self, project: Project, items: list[int] | None = None) -> None:
        """``items``: only those items' answers (an item page), else every labelled item's."""
        self.sets: list[LabelSet] = list(project.label_sets.all())
        primary = primary_set(project)
        self.primary_id = primary.pk if primary else None
        self.several = len(self.sets) > 1
        self.others = [s for s in self.sets if s.pk != self.primary_id]
        self.names = dict(LabelClass.objects.filter(project=project).values_list("pk", "name"))
        self.values = labels_per_set(project, items=items) if self.several else {}
        self.folders = {s.pk: _safe(s.name, f"set-{s.pk}") for s in self.sets}

    def _text(self, label_set: LabelSet, value) -> str:
        if value is None:
            return ""
        if label_set.multi:
            return TAG_SEPARATOR.join(sorted(self.names.get(t, "") for t in value))
        return self.names.get(value, "")

    def csv_header(self) -> list[str]:
        return [f"label:{s.name}" for s in self.others]

    def csv_cells(self, item_id: int) -> list[str]:
        return [self._text(s, self.values.get(s.pk, {}).get(item_id)) for s in self.others]

    def other_classes(self, item_id: int) -> list[int]:
        """The item's answers in every set but the primary one: its class, or each of its tags."""
        out: list[int] = []
        for s in self.others:
            value = self.values.get(s.pk, {}).get(item_id)
            out += sorted(value) if s.multi and value else [value] if value else []
        return out

    def json_sets(self, item_id: int) -> list[dict]:
        out = []
        for s in self.sets:
            value = self.values.get(s.pk, {}).get(item_id)
            entry = {"set": s.name, "set_id": s.pk, "kind": s.kind,
                     "removed": s.removed_at is not None}
            if s.multi:
                entry["tags"] = None if value is None else sorted(self.names.get(t) for t in value)
                entry["tag_ids"] = None if value is None else sorted(value)
            else:
                entry["label"] = self.names.get(value) if value else None
                entry["label_id"] = value
            out.append(entry)
        return out

    def set_info(self) -> list[dict]:
        return [
            {"id": s.pk, "name": s.name, "kind": s.kind, "order": s.order,
             "removed": s.removed_at is not None,
             "classes": [c.pk for c in s.classes.all()]}
            for s in self.sets
        ]

    def folder_entries(self, item_id: int, class_folders: dict[int, str]) -> list[str]:
        """``<set>/<class>`` folders the item's image goes into (one per tag in multi-label)."""
        paths = []
        for s in self.sets:
            value = self.values.get(s.pk, {}).get(item_id)
            chosen = value if s.multi and value else ([value] if value else [])
            paths += [f"{self.folders[s.pk]}/{class_folders[c]}" for c in chosen
                      if c in class_folders]
        return paths


def tags_of_annotations(project: Project) -> dict[int, list[int]]:
    """Annotation id -> its tag ids, for the multi-label sets' annotations of the project."""
    tags: dict[int, list[int]] = {}
    for annotation_id, tag in Annotation.tags.through.objects.filter(
        annotation__label_set__project=project
    ).order_by("annotation_id", "labelclass_id").values_list("annotation_id", "labelclass_id"):
        tags.setdefault(annotation_id, []).append(tag)
    return tags
