"""Leases end with the membership: a removed member's items go back to the pool at once."""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from labeler.projects.models import Membership

from .queue import release_leases


@receiver(post_delete, sender=Membership, dispatch_uid="release_leases_of_removed_member")
def release_removed_members_leases(sender, instance: Membership, **kwargs) -> None:
    """Every way a membership goes (settings page, admin, a deleted user) releases its leases."""
    release_leases(instance.project_id, instance.user_id)
