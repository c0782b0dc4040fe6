"""Which item an annotator sees next, handed out under a lease so two people never get the same one.

Claiming is one conditional UPDATE per item (`... WHERE lease is free`), which is atomic on
SQLite and PostgreSQL alike: of two annotators racing for an item exactly one update matches.
With overlap k > 1 an item goes to k different annotators, one at a time.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from labeler.items.models import Item
from labeler.projects.models import Project

from .models import Annotation, Skip

_rng = random.SystemRandom()
RANKED = ("query_rank", "random_key")


def _free_for(user: AbstractBaseUser, now) -> Q:
    return Q(leased_by__isnull=True) | Q(lease_expires_at__lte=now) | Q(leased_by=user)


def open_items(project: Project, user: AbstractBaseUser) -> QuerySet[Item]:
    """Items that still need a label from `user`: under the overlap, not labeled or skipped by them."""
    qs = Item.objects.filter(project=project)
    if project.overlap <= 1:
        return qs.filter(annotation_count=0).exclude(
            Exists(Skip.objects.filter(item=OuterRef("pk"), annotator=user))
        )
    return qs.filter(annotation_count__lt=project.overlap).exclude(
        Exists(Annotation.objects.filter(item=OuterRef("pk"), annotator=user))
    ).exclude(Exists(Skip.objects.filter(item=OuterRef("pk"), annotator=user)))


def next_items(
    project: Project,
    user: AbstractBaseUser,
    n: int = 1,
    *,
    exclude: Iterable[int] = (),
    rng: random.Random | None = None,
) -> list[Item]:
    """Lease up to `n` items to `user`, best first.

    Items the user already holds come first (a reload shows the same image). New ones follow the
    query strategy's ranking; a share `project.audit_share` of them is instead drawn uniformly at
    random (audit items, flagged on the lease) so that accuracy can be estimated without the
    bias of active learning.
    """
    rng = rng or _rng
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    excluded = set(exclude)
    base = open_items(project, user)

    # Few rows, found through the leased_by index; sorted here so the planner can't pick a scan
    # of the whole pool in rank order instead. (Labeling or skipping ends a lease, so a held
    # item is still open.)
    held = sorted(
        (
            i for i in Item.objects.filter(leased_by=user).order_by()[:200]
            if i.project_id == project.pk and i.lease_expires_at > now
            and i.annotation_count < project.overlap and i.pk not in excluded
        ),
        key=lambda i: (i.query_rank, i.random_key),
    )[:n]
    if held:
        Item.objects.filter(pk__in=[i.pk for i in held]).update(lease_expires_at=expires)
    chosen = held
    excluded.update(i.pk for i in held)
    attempts = 0
    while len(chosen) < n and attempts < 5:
        attempts += 1
        audit = rng.random() < project.audit_share
        free = base.filter(_free_for(user, now)).exclude(pk__in=excluded)
        if audit:
            # Uniform draw: the first item after a random point in random_key order.
            point = rng.random()
            candidates = list(free.filter(random_key__gte=point).order_by("random_key")[:4])
            if not candidates:
                candidates = list(free.order_by("random_key")[:4])
        else:
            candidates = list(free.order_by(*RANKED)[: (n - len(chosen)) + 4])
        if not candidates:
            break
        for item in candidates:
            # Re-check openness in the same statement: someone may have labeled it meanwhile.
            claimed = (
                Item.objects.filter(pk=item.pk, annotation_count__lt=project.overlap)
                .filter(_free_for(user, now))
                .update(leased_by=user, lease_expires_at=expires, lease_is_audit=audit)
            )
            excluded.add(item.pk)
            if claimed:
                item.leased_by = user
                item.lease_is_audit = audit
                chosen.append(item)
                attempts = 0
                if audit or len(chosen) >= n:
                    break
    return chosen


def release_leases(project: Project, user: AbstractBaseUser, item_ids: Iterable[int] | None = None) -> int:
    """Give back what `user` holds (all, or the given items), so others can take it at once."""
    qs = Item.objects.filter(project=project, leased_by=user)
    if item_ids is not None:
        qs = qs.filter(pk__in=list(item_ids))
    return qs.update(leased_by=None, lease_expires_at=None, lease_is_audit=False)


def grid_items(project: Project, user: AbstractBaseUser, label_id: int, n: int = 36) -> list[Item]:
    """Open items the current model puts in `label_id` with the highest confidence, leased to user."""
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    candidates = list(
        open_items(project, user)
        .filter(_free_for(user, now), predicted_class_id=label_id)
        .order_by(F("predicted_confidence").desc(nulls_last=True), "pk")[: n * 2]
    )
    chosen: list[Item] = []
    for item in candidates:
        if Item.objects.filter(pk=item.pk, annotation_count__lt=project.overlap).filter(
            _free_for(user, now)
        ).update(
            leased_by=user, lease_expires_at=expires, lease_is_audit=False
        ):
            chosen.append(item)
            if len(chosen) >= n:
                break
    return chosen
