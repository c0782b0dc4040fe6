from django import forms

from .models import HOTKEY_ORDER, LabelClass, Project


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
