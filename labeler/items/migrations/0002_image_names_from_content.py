"""Stored image names whose extension came from the client (``<sha>.html``, ``.svg``...) get the
extension of the format their content decodes as. Only such items are read (the query skips
names that already end in an image extension); files that are no image stay as they are and
are refused by the serving view."""

from django.core.files.storage import default_storage
from django.db import migrations

from labeler.items.validation import IMAGE_TYPES, detect_type

GOOD_SUFFIX = r"\.(" + "|".join(sorted({t.extension for t in IMAGE_TYPES.values()})) + r")$"


def rename_by_content(apps, schema_editor):
    Item = apps.get_model("items", "Item")
    for item in Item.objects.exclude(image__regex=GOOD_SUFFIX).only("image").iterator():
        old = item.image.name
        try:
            with default_storage.open(old, "rb") as fh:
                kind = detect_type(fh)
                if kind is None:
                    continue
                new = f"{old.rsplit('.', 1)[0]}.{kind.extension}"
                if not default_storage.exists(new):
                    new = default_storage.save(new, fh)
        except FileNotFoundError:
            continue
        Item.objects.filter(pk=item.pk).update(image=new)
        default_storage.delete(old)


class Migration(migrations.Migration):
    dependencies = [("items", "0001_initial")]

    operations = [migrations.RunPython(rename_by_content, migrations.RunPython.noop)]
