"""What the labeling API accepts: one form per endpoint (see labeler.request_input)."""

from __future__ import annotations

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


class AnnotateForm(forms.Form):
    item = IdField()
    label = IdField()
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
