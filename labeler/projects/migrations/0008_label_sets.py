"""Label sets: every existing project gets one single-choice set holding its classes."""

import django.db.models.deletion
from django.db import migrations, models


def one_set_per_project(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    LabelSet = apps.get_model("projects", "LabelSet")
    LabelClass = apps.get_model("projects", "LabelClass")
    for project in Project.objects.all().iterator():
        label_set = LabelSet.objects.create(project=project, name="Class", kind="single", order=0)
        LabelClass.objects.filter(project=project).update(label_set=label_set)


def back_to_one_question(apps, schema_editor):
    """Backwards: only the first set's classes can stay (one question per project)."""
    LabelSet = apps.get_model("projects", "LabelSet")
    LabelClass = apps.get_model("projects", "LabelClass")
    for label_set in LabelSet.objects.order_by("project_id", "order", "id"):
        first = LabelSet.objects.filter(project_id=label_set.project_id).order_by("order", "id")[0]
        if first.pk != label_set.pk:
            LabelClass.objects.filter(label_set=label_set).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0007_job_fields_to_training_job"),
    ]

    operations = [
        migrations.CreateModel(
            name="LabelSet",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("kind", models.CharField(choices=[("single", "Single choice"), ("multi", "Multi-label")], default="single", max_length=8)),
                ("order", models.PositiveIntegerField(default=0)),
                ("removed_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="label_sets", to="projects.project")),
            ],
            options={
                "ordering": ["project", "order", "id"],
                "constraints": [models.UniqueConstraint(fields=("project", "name"), name="unique_set_name_per_project")],
            },
        ),
        migrations.AddField(
            model_name="labelclass",
            name="label_set",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="classes", to="projects.labelset"),
        ),
        migrations.RunPython(one_set_per_project, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="labelclass",
            name="label_set",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="classes", to="projects.labelset"),
        ),
        migrations.RemoveConstraint(
            model_name="labelclass",
            name="unique_class_name_per_project",
        ),
        migrations.AddConstraint(
            model_name="labelclass",
            constraint=models.UniqueConstraint(fields=("label_set", "name"), name="unique_class_name_per_set"),
        ),
        # Backwards this runs first, before one name per project is required again.
        migrations.RunPython(migrations.RunPython.noop, back_to_one_question),
    ]
