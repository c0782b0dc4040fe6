"""Annotations belong to a label set: each existing one to its class's set (nothing lost)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def set_of_label(apps, schema_editor):
    Annotation = apps.get_model("annotations", "Annotation")
    LabelClass = apps.get_model("projects", "LabelClass")
    Annotation.objects.update(label_set=Subquery(
        LabelClass.objects.filter(pk=OuterRef("label_id")).values("label_set_id")[:1]
    ))


def keep_first_set(apps, schema_editor):
    """Backwards: one label per annotator and item again, so only the first set's labels stay."""
    Annotation = apps.get_model("annotations", "Annotation")
    LabelSet = apps.get_model("projects", "LabelSet")
    first = Subquery(
        LabelSet.objects.filter(project_id=OuterRef("label_set__project_id"))
        .order_by("order", "id").values("id")[:1]
    )
    Annotation.objects.exclude(label_set_id=first).delete()
    Annotation.objects.filter(label__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0001_initial"),
        ("projects", "0008_label_sets"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotation",
            name="label_set",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="annotations", to="projects.labelset"),
        ),
        migrations.RunPython(set_of_label, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="annotation",
            name="label_set",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="annotations", to="projects.labelset"),
        ),
        migrations.AlterField(
            model_name="annotation",
            name="label",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="annotations", to="projects.labelclass"),
        ),
        migrations.AddField(
            model_name="annotation",
            name="tags",
            field=models.ManyToManyField(blank=True, related_name="tagged_annotations", to="projects.labelclass"),
        ),
        migrations.RemoveConstraint(
            model_name="annotation",
            name="one_label_per_annotator",
        ),
        migrations.AlterField(
            model_name="annotation",
            name="client_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="annotation",
            constraint=models.UniqueConstraint(fields=("item", "annotator", "label_set"), name="one_label_per_annotator_and_set"),
        ),
        migrations.AddConstraint(
            model_name="annotation",
            constraint=models.UniqueConstraint(fields=("client_id", "label_set"), name="one_row_per_client_id"),
        ),
        # Backwards this runs first, before the old constraints come back.
        migrations.RunPython(migrations.RunPython.noop, keep_first_set),
    ]
