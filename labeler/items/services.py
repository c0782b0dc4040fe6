"""State changes of items that are not imports (labeler.items.importing adds them)."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db import transaction

from .models import Item


@transaction.atomic
def delete_item(item: Item) -> None:
    """Remove an item with its labels; its image file goes once the deletion is committed
    (files are content-addressed per project, so no other item shares it)."""
    name = item.image.name
    item.delete()
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))
