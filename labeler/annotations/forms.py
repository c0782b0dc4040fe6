"""What the labeling API accepts: one form per endpoint (see labeler.request_input)."""

from __future__ import annotations

from typing import Any

from django import forms

from labeler.request_input import (
    BoundedIntField,
    CommaIdsField,
    IdField,
    IdListField,
    NumberField,
    TextField,
    UUIDInputField,
)


class AnswersField(forms.Field):
    """The answers of one visit: a JSON list of {"set": id, "label": id} (single-choice) or
    {"set": id, "tags": [ids]} (multi-label, possibly empty), one per label set."""

    default_error_messages = {
        "invalid": 'Give a list of {"set": id, "label": id} or {"set": id, "tags": [ids]}.',
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[tuple[int, int | None, tuple[int, ...] | None]]:
        if value in (None, ""):
            return []
        if not isinstance(value, list) or len(value) > 50:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        answers, seen = [], set()
        for entry in value:
            if not isinstance(entry, dict) or set(entry) - {"set", "label", "tags"} or (
                ("label" in entry) == ("tags" in entry)
            ):
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            set_id = IdField().clean(entry.get("set"))
            if set_id in seen:
                raise forms.ValidationError("One answer per label set.", code="invalid")
            seen.add(set_id)
            if "tags" in entry:
                tags = IdListField(max_items=200).clean(entry["tags"])
                answers.append((set_id, None, tuple(tags)))
            else:
                answers.append((set_id, IdField().clean(entry["label"]), None))
        return answers


class AnnotateForm(forms.Form):
    item = IdField()
    label = IdField(required=False)
    labels = AnswersField()
    seconds = NumberField(required=False)
    client_id = UUIDInputField(required=False)


class RelabelForm(forms.Form):
    label = IdField()


class SkipForm(forms.Form):
    item = IdField()
    reason = TextField(required=False)  # the service keeps the first 200 characters


class GridConfirmForm(forms.Form):
    label = IdField()
    confirmed = IdListField(max_items=200)
    rejected = IdListField(max_items=200)


class NextQuery(forms.Form):
    """?n=&exclude= of the next-items API: n is clamped to 1..20 by the view."""

    n = BoundedIntField(required=False, min_value=-(2**31), max_value=2**31)
    exclude = CommaIdsField(max_items=500)


class GridItemsQuery(forms.Form):
    label = IdField()
    n = BoundedIntField(required=False, min_value=-(2**31), max_value=2**31)
