from django import forms

from labeler.request_input import BoundedIntField, CommaIdsField, IdField, NumberField, TextField

from .models import HOTKEY_ORDER, LabelClass, LabelSet, Project, Role, SetKind


class ProjectForm(forms.ModelForm):
    classes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One class per line (or comma-separated). Hotkeys 1-9, 0, then letters.",
    )

    class Meta:
        model = Project
        fields = ["name", "description", "retrain_every"]

    def clean_classes(self) -> list[str]:
        raw = self.cleaned_data["classes"].replace(",", "\n")
        names = [n.strip() for n in raw.splitlines() if n.strip()]
        if not names:
            raise forms.ValidationError("Give at least one class.")
        if len(set(names)) != len(names):
            raise forms.ValidationError("Class names must be unique.")
        if len(names) > len(HOTKEY_ORDER):
            raise forms.ValidationError(f"At most {len(HOTKEY_ORDER)} classes (one hotkey each).")
        # The model's limit (SQLite would store any length; PostgreSQL would fail with a 500).
        limit = LabelClass._meta.get_field("name").max_length
        for name in names:
            if len(name) > limit:
                raise forms.ValidationError(
                    f"Class names have at most {limit} characters; "
                    f"“{name[:20]}…” has {len(name)}."
                )
        return names


# The lead's settings page: one small form per action (validated with labeler.request_input.clean).
MAX_LEASE_SECONDS = 30 * 24 * 3600


class SettingsForm(forms.Form):
    query_strategy = TextField(max_length=64)
    retrain_every = BoundedIntField(min_value=1, max_value=10_000)
    audit_share = NumberField(min_value=0.0, max_value=0.5)
    overlap = BoundedIntField(min_value=1, max_value=100)
    lease_seconds = BoundedIntField(min_value=1, max_value=MAX_LEASE_SECONDS)


class BackboneForm(forms.Form):
    backbone = TextField(max_length=64)
    weights_path = TextField(required=False, max_length=500)


class ClassNameForm(forms.Form):
    name = TextField(required=False, max_length=LabelClass._meta.get_field("name").max_length)
    label_set = IdField(required=False)


class AddSetForm(forms.Form):
    name = TextField(max_length=LabelSet._meta.get_field("name").max_length)
    kind = forms.ChoiceField(choices=SetKind.choices,
                             error_messages={"invalid_choice": "A label set is single or multi."})
    classes = TextField(required=False, max_length=20_000)


class EditSetForm(forms.Form):
    label_set = IdField()
    name = TextField(max_length=LabelSet._meta.get_field("name").max_length)


class SetForm(forms.Form):
    label_set = IdField()


class MoveSetForm(SetForm):
    direction = forms.ChoiceField(choices=[("up", "up"), ("down", "down")],
                                  error_messages={"invalid_choice": "Move a set up or down."})


class DeleteSetForm(SetForm):
    confirm = forms.BooleanField(error_messages={
        "required": "Tick the box to confirm: the set's annotations are deleted for good."
    })


class EditClassForm(ClassNameForm):
    label = IdField()
    hotkey = TextField(required=False, max_length=8)


class ReorderForm(forms.Form):
    order = CommaIdsField(max_items=1000)


class MoveClassForm(forms.Form):
    label = IdField()
    direction = forms.ChoiceField(choices=[("up", "up"), ("down", "down")],
                                  error_messages={"invalid_choice": "Move a class up or down."})


class MergeForm(forms.Form):
    source = IdField()
    target = IdField()


class MemberForm(forms.Form):
    username = TextField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, required=False)


class RemoveMemberForm(forms.Form):
    membership = IdField()
