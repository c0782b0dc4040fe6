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
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from labeler.items.models import Item, Prediction
from labeler.projects.models import Project

from .models import Annotation, Skip

_rng = random.SystemRandom()


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


# What a served item needs (the label page's payload and the lease); other fields stay deferred.
# In the model's field order: Model.from_db assigns a partial row's values in that order.
SERVED_FIELDS = (
    "id", "project_id", "original_name", "width", "height", "random_key", "annotation_count",
    "query_rank", "predicted_class_id", "predicted_confidence",
)


def _served(rows: Iterable[tuple], user: AbstractBaseUser, audit: bool | None = None) -> list[Item]:
    """Item instances from raw rows (SERVED_FIELDS + lease_is_audit); other fields deferred."""
    items = []
    for row in rows:
        item = Item.from_db(connection.alias, list(SERVED_FIELDS), row[: len(SERVED_FIELDS)])
        item.leased_by_id = user.pk
        item.lease_is_audit = bool(row[len(SERVED_FIELDS)]) if audit is None else audit
        items.append(item)
    return items


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
    query strategy's ranking, except that each new item is, with probability
    `project.audit_share` and independently of the others, drawn uniformly at random instead
    (an audit item, flagged on the lease) so that accuracy can be estimated without the bias of
    active learning. The audit slots of a request are filled by one query, the ranked ones by
    another: at most two reads whatever `n`.

    This runs on every key press of every annotator, so it is a few hand-written statements
    (index scans, whatever the pool size) rather than ORM queries, whose Python overhead was
    most of the request's time.
    """
    rng = rng or _rng
    when = timezone.now()
    # Raw SQL: datetimes in the database's own format (SQLite compares them as text).
    now = connection.ops.adapt_datetimefield_value(when)
    expires = connection.ops.adapt_datetimefield_value(
        when + timedelta(seconds=project.lease_seconds)
    )
    excluded = {int(x) for x in exclude}
    with connection.cursor() as cursor:
        # Few rows, found through the leased_by index (no condition here matches the pool's
        # rank index, so the planner can't scan the whole pool in rank order instead) and sorted
        # here. (Labeling or skipping ends a lease, so a held item is still open.)
        cursor.execute(
            f"SELECT {_COLUMNS}, lease_is_audit FROM {_ITEMS}"
            " WHERE leased_by_id = %s AND lease_expires_at > %s LIMIT 200",
            [user.pk, now],
        )
        rows = [
            r for r in cursor.fetchall()
            if r[1] == project.pk and r[_COUNT] < project.overlap and r[0] not in excluded
        ]
        rows.sort(key=lambda r: (r[_RANK], r[_KEY]))
        chosen = _served(rows[:n], user)
        if chosen:
            # Renewing a lease never waits for a row another transaction holds (a pool refresh
            # rewriting it): that lease stays as it was this once.
            held = f"id IN ({_marks(len(chosen))})"
            if _SKIP_LOCKED:
                held = f"id IN (SELECT id FROM {_ITEMS} WHERE {held}{_SKIP_LOCKED})"
            cursor.execute(f"UPDATE {_ITEMS} SET lease_expires_at = %s WHERE {held}",
                           [expires, *(i.pk for i in chosen)])
        excluded.update(i.pk for i in chosen)
        attempts = 0
        while len(chosen) < n and attempts < 5:
            attempts += 1
            # One coin per open slot: each served item is an audit item with probability
            # audit_share, independently, whatever the batch size. (A coin per request, with
            # a ranked draw filling the rest, gave 10/5.5/3.8/2.7/2.3 % for n = 1..5.)
            coins = [rng.random() < project.audit_share for _ in range(n - len(chosen))]
            drawn: dict[bool, list[Item]] = {}
            exhausted = False
            for audit in (True, False):
                want = sum(c == audit for c in coins)
                if not want:
                    drawn[audit] = []
                    continue
                with transaction.atomic():  # the candidates stay locked until claimed
                    candidates = _candidates(cursor, project, user, now, excluded, audit, rng,
                                             want if _SKIP_LOCKED else want + 4)
                    exhausted |= not candidates
                    won, tried = _claim(cursor, candidates, project, user, now, expires, audit,
                                        want)
                excluded.update(tried)
                drawn[audit] = _served(won, user, audit)
            # Audit items take the places their coins fell on, so position gives nothing away.
            before = len(chosen)
            for audit in coins:
                if drawn[audit]:
                    chosen.append(drawn[audit].pop(0))
            if len(chosen) > before:
                attempts = 0
            if exhausted or len(chosen) >= n:
                break
    return chosen


_ITEMS = Item._meta.db_table
_SKIPS = Skip._meta.db_table
_ANNOTATIONS = Annotation._meta.db_table
_COLUMNS = ", ".join(SERVED_FIELDS)
_RANK = SERVED_FIELDS.index("query_rank")
_KEY = SERVED_FIELDS.index("random_key")
_COUNT = SERVED_FIELDS.index("annotation_count")
# PostgreSQL: candidates are read with FOR UPDATE SKIP LOCKED, so that a claim never waits for
# a row another transaction is writing (a retrain's ranking or a pool refresh rewrites rows in
# batches of thousands, for a second or more at a million items); two annotators skip each
# other's candidates instead of racing for them. SQLite has one writer at a time: no row locks.
_SKIP_LOCKED = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked \
    else ""


def _marks(k: int) -> str:
    return ", ".join(["%s"] * k)


def _candidates(cursor, project, user, now, excluded, audit, rng, limit) -> list[tuple]:
    """Open items free for `user`, in rank order (or from a random point in random-key order)."""
    # overlap 1 is an equality on annotation_count, so the (project, annotation_count,
    # query_rank, random_key) index yields rows already in order.
    where = [
        "i.project_id = %s",
        "i.annotation_count = 0" if project.overlap <= 1 else "i.annotation_count < %s",
        "(i.leased_by_id IS NULL OR i.lease_expires_at <= %s OR i.leased_by_id = %s)",
        f"NOT EXISTS (SELECT 1 FROM {_SKIPS} s WHERE s.item_id = i.id AND s.annotator_id = %s)",
    ]
    params: list = [project.pk] + ([] if project.overlap <= 1 else [project.overlap])
    params += [now, user.pk, user.pk]
    if project.overlap > 1:
        where.append(
            f"NOT EXISTS (SELECT 1 FROM {_ANNOTATIONS} a"
            " WHERE a.item_id = i.id AND a.annotator_id = %s)"
        )
        params.append(user.pk)
    if excluded:
        where.append(f"i.id NOT IN ({_marks(len(excluded))})")
        params += sorted(excluded)
    columns = ", ".join(f"i.{c}" for c in SERVED_FIELDS)
    sql = f"SELECT {columns} FROM {_ITEMS} i WHERE " + " AND ".join(where)
    if audit:
        # Uniform draw: the first items after a random point in random_key order.
        point = rng.random()
        cursor.execute(sql + f" AND i.random_key >= %s ORDER BY i.random_key LIMIT %s{_SKIP_LOCKED}",
                       [*params, point, limit])
        rows = cursor.fetchall()
        if rows:
            return rows
        cursor.execute(sql + f" ORDER BY i.random_key LIMIT %s{_SKIP_LOCKED}", [*params, limit])
    else:
        cursor.execute(sql + f" ORDER BY i.query_rank, i.random_key LIMIT %s{_SKIP_LOCKED}",
                       [*params, limit])
    return cursor.fetchall()


def _claim(
    cursor, candidates, project, user, now, expires, audit: bool, want: int
) -> tuple[list[tuple], list[int]]:
    """Lease up to `want` of `candidates`, in order, in one short write transaction.

    Returns the rows won and the ids tried (won or lost to someone else), which the caller
    leaves out of its next draw.

    Each claim re-checks in the same statement that the item is still open and free: of two
    annotators racing for an item exactly one UPDATE matches, on SQLite and PostgreSQL alike.
    """
    won: list[tuple] = []
    tried: list[int] = []
    with transaction.atomic(savepoint=False):
        for row in candidates:
            tried.append(row[0])
            cursor.execute(
                f"UPDATE {_ITEMS} SET leased_by_id = %s, lease_expires_at = %s, lease_is_audit = %s"
                " WHERE id = %s AND annotation_count < %s"
                " AND (leased_by_id IS NULL OR lease_expires_at <= %s OR leased_by_id = %s)",
                [user.pk, expires, audit, row[0], project.overlap, now, user.pk],
            )
            if cursor.rowcount == 1:
                won.append(row)
                if len(won) >= want:
                    break
    return won, tried


def release_clause(user_id: int) -> tuple[str, list]:
    """The SET clause that ends `user_id`'s lease on a row (and leaves anyone else's alone): the
    one definition of releasing a lease, used alone (release_leases) and inside the label save's
    single UPDATE. SET expressions all see the row as it was, on SQLite and PostgreSQL alike."""
    return (
        "lease_expires_at = CASE WHEN leased_by_id = %s THEN NULL ELSE lease_expires_at END,"
        " lease_is_audit = CASE WHEN leased_by_id = %s THEN %s ELSE lease_is_audit END,"
        " leased_by_id = CASE WHEN leased_by_id = %s THEN NULL ELSE leased_by_id END",
        [user_id, user_id, False, user_id],
    )


def release_leases(
    project: Project | int, user: AbstractBaseUser | int, item_ids: Iterable[int] | None = None
) -> int:
    """Give back what `user` holds (all, or the given items), so others can take it at once."""
    project_id = project if isinstance(project, int) else project.pk
    user_id = user if isinstance(user, int) else user.pk
    release, params = release_clause(user_id)
    where, args = "project_id = %s AND leased_by_id = %s", [project_id, user_id]
    if item_ids is not None:
        ids = [int(i) for i in item_ids]
        if not ids:
            return 0
        where += f" AND id IN ({_marks(len(ids))})"
        args += ids
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {_ITEMS} SET {release} WHERE {where}", [*params, *args])
        return cursor.rowcount


def grid_items(
    project: Project, user: AbstractBaseUser, label_id: int, n: int = 36, *, own_columns: bool = True
) -> list[Item]:
    """Open items the current model puts in `label_id` with the highest confidence, leased to user.

    `own_columns`: the class is of the set the items' prediction columns hold; else the set's
    predictions are read from labeler.items.models.Prediction (other sets, tags)."""
    when = timezone.now()
    if own_columns:
        candidates = list(
            open_items(project, user)
            .filter(_free_for(user, when), predicted_class_id=label_id)
            .order_by(F("predicted_confidence").desc(nulls_last=True), "pk")[: n * 2]
        )
    else:
        confidence = Prediction.objects.filter(item=OuterRef("pk"), label_id=label_id)
        candidates = list(
            open_items(project, user)
            .filter(_free_for(user, when), Exists(confidence))
            .annotate(set_confidence=Subquery(confidence.values("confidence")[:1]))
            .order_by(F("set_confidence").desc(), "pk")[: n * 2]
        )
        for item in candidates:  # the tile shows the set's confidence
            item.predicted_class_id, item.predicted_confidence = label_id, item.set_confidence
    now = connection.ops.adapt_datetimefield_value(when)
    expires = connection.ops.adapt_datetimefield_value(
        when + timedelta(seconds=project.lease_seconds)
    )
    with connection.cursor() as cursor:
        rows, _ = _claim(
            cursor, [(i.pk,) for i in candidates], project, user, now, expires, False, n
        )
    won = {row[0] for row in rows}
    return [i for i in candidates if i.pk in won]
