"""The lead's item table: filters validated by a form, keyset pages on indexed columns.

Every filter reads a column of ``Item`` (current label, out-of-fold prediction, prediction,
confidence, audit flag: see labeler.items.models for how they are kept current), and every sort
order is ``(value, id)`` with an index starting ``(project, ...)`` behind it, so a page is one
index range scan of ``PAGE + 1`` rows wherever it is in a million items ("keyset" or "seek"
pagination: the cursor is the last row's sort value and id, never an OFFSET).
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from labeler.annotations.models import Annotation
from labeler.items.models import Item
from labeler.projects.models import Project

PAGE_SIZES = (25, 50, 100, 200)
SORTS = {
    "id": "Oldest first",
    "-id": "Newest first",
    "confidence": "Least confident first",
    "-confidence": "Most confident first",
}
NONE = "none"


def _class_choices(project: Project, none_label: str) -> list[tuple[str, str]]:
    return [("", "any"), (NONE, none_label)] + [
        (str(c.pk), c.name) for c in project.classes.all()
    ]


class ItemFilterForm(forms.Form):
    """The table's query string. Unknown classes, users or cursors are errors (400), not
    silently ignored: a shared link must show what it says or say why it can't."""

    label = forms.ChoiceField(required=False, label="Current label")
    oof = forms.ChoiceField(required=False, label="Predicted out-of-fold")
    predicted = forms.ChoiceField(required=False, label="Prediction (latest model)")
    conf_min = forms.FloatField(required=False, min_value=0, max_value=1, label="Confidence ≥")
    conf_max = forms.FloatField(required=False, min_value=0, max_value=1, label="Confidence ≤")
    audit = forms.ChoiceField(required=False, label="Audit item",
                              choices=[("", "any"), ("1", "yes"), ("0", "no")])
    labeled_by = forms.ChoiceField(required=False, label="Labeled by")
    disagree = forms.BooleanField(required=False,
                                  label="Out-of-fold prediction disagrees with the label")
    sort = forms.ChoiceField(required=False, choices=list(SORTS.items()))
    per_page = forms.TypedChoiceField(required=False, coerce=int, empty_value=50, initial="50",
                                      choices=[(str(n), str(n)) for n in PAGE_SIZES])
    after = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, data, *, project: Project, users: QuerySet) -> None:
        if data is not None and not data.get("per_page"):
            data = data.copy()
            data["per_page"] = "50"  # so the page-size menu shows the size in use
        super().__init__(data)
        self.fields["label"].choices = _class_choices(project, "unlabeled")
        self.fields["oof"].choices = _class_choices(project, "none (not in the last CV)")
        self.fields["predicted"].choices = _class_choices(project, "no prediction")
        self.fields["labeled_by"].choices = [("", "anyone")] + [
            (str(u.pk), u.get_username()) for u in users
        ]

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("conf_min"), data.get("conf_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("Confidence ≥ must not exceed confidence ≤.")
        data["sort"] = data.get("sort") or "id"
        after = data.get("after") or ""
        data["cursor"] = None
        if after and "sort" not in self.errors:
            try:
                if data["sort"] in ("id", "-id"):
                    data["cursor"] = (None, int(after))
                else:
                    value, _, pk = after.partition(":")
                    data["cursor"] = (float(value), int(pk))
            except ValueError:
                self.add_error("after", "Not a page cursor of this sort order.")
        return data


@dataclass
class Page:
    items: list[Item]
    next_cursor: str | None


def filtered(project: Project, data: dict) -> QuerySet[Item]:
    """The items matching the cleaned filters (no order, no page yet)."""
    qs = Item.objects.filter(project=project)
    for field, column in (("label", "current_label"), ("oof", "oof_predicted"),
                          ("predicted", "predicted_class")):
        value = data.get(field)
        if value == NONE:
            qs = qs.filter(**{f"{column}__isnull": True})
        elif value:
            qs = qs.filter(**{f"{column}_id": int(value)})
    if data.get("conf_min") is not None:
        qs = qs.filter(predicted_confidence__gte=data["conf_min"])
    if data.get("conf_max") is not None:
        qs = qs.filter(predicted_confidence__lte=data["conf_max"])
    if data.get("audit"):
        qs = qs.filter(has_audit_label=data["audit"] == "1")
    if data.get("labeled_by"):
        qs = qs.filter(Exists(Annotation.objects.filter(
            item_id=OuterRef("pk"), annotator_id=int(data["labeled_by"]))))
    if data.get("disagree"):
        qs = qs.filter(current_label__isnull=False, oof_predicted__isnull=False).exclude(
            oof_predicted=F("current_label"))
    return qs


def page(project: Project, data: dict) -> Page:
    """One page of the table, after ``data["cursor"]`` in ``data["sort"]`` order."""
    qs = filtered(project, data)
    sort = data["sort"]
    cursor = data.get("cursor")
    size = data.get("per_page") or 50
    descending = sort.startswith("-")
    if sort.lstrip("-") == "id":
        if cursor:
            qs = qs.filter(pk__lt=cursor[1]) if descending else qs.filter(pk__gt=cursor[1])
        qs = qs.order_by("-pk" if descending else "pk")
    else:
        # Items without a prediction have no place in a confidence order: left out.
        qs = qs.filter(predicted_confidence__isnull=False)
        if cursor:
            value, pk = cursor
            if descending:
                qs = qs.filter(predicted_confidence__lte=value).filter(
                    Q(predicted_confidence__lt=value) | Q(pk__lt=pk))
            else:
                qs = qs.filter(predicted_confidence__gte=value).filter(
                    Q(predicted_confidence__gt=value) | Q(pk__gt=pk))
        order = ("-predicted_confidence", "-pk") if descending else ("predicted_confidence", "pk")
        qs = qs.order_by(*order)
    rows = list(qs.only(
        "pk", "original_name", "width", "height", "current_label_id", "oof_predicted_id",
        "predicted_class_id", "predicted_confidence", "has_audit_label", "annotation_count",
    )[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = (str(last.pk) if sort.lstrip("-") == "id"
                       else f"{last.predicted_confidence!r}:{last.pk}")
    return Page(rows, next_cursor)


def member_users(project: Project) -> QuerySet:
    """Who can appear in "labeled by": the project's members."""
    return get_user_model().objects.filter(memberships__project=project).order_by("username")
