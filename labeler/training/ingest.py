"""Writing a job's results into item rows, in short transactions.

Annotators keep saving labels and taking items while results are ingested, so no transaction may
hold the database for long: on SQLite one writer at a time, on PostgreSQL the rows it updates.
On PostgreSQL rows go in by ``BULK_BATCH``: a COPY into a temporary table and one ``UPDATE ...
FROM`` it per transaction (a million suggestions in 50 statements, not 5,000). On SQLite, by
``PREDICTION_BATCH``, one prepared statement run per row (SQLite has no UPDATE ... FROM before
3.33 and gains nothing from it: its statements cost microseconds, and its one write lock must
be released often).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from django.db import OperationalError, connection, transaction

from labeler.items.models import UNRANKED, Item
from labeler.projects.models import Project

#: Rows per write transaction on SQLite (each holds the one write lock a few ms).
PREDICTION_BATCH = 200
#: Rows per write transaction on PostgreSQL: one COPY into a staging table and one
#: ``UPDATE ... FROM`` it, which locks only these rows, for a fraction of a second.
BULK_BATCH = 20_000
_ITEMS = Item._meta.db_table
#: After each batch of a pool refresh, a pause this many times as long as the batch took: the
#: refresh is not urgent (the ranked and labelled items are already served), and the database
#: then serves the annotators alone half the time (the throttle of online backfills, as
#: gh-ost's or Sentry's).
BACKFILL_PAUSE = 1.0
#: PostgreSQL advisory lock taken by every bulk write of item rows, for its transaction: two
#: ingests (a version's pool refresh and the next version's first writes) update overlapping
#: rows in no fixed order and would deadlock; taking turns per batch costs a fraction of a second.
BULK_LOCK = 0x6C61626C


def bulk_lock(cursor) -> None:
    """Wait for this transaction's turn to bulk-write item rows (PostgreSQL; SQLite has one
    writer anyway)."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BULK_LOCK])


def _update_rows(columns: Sequence[str], casts: Sequence[str], rows: list[tuple]) -> None:
    """``UPDATE items SET col = value ... WHERE id = row id`` for rows ``(values..., id)``,
    one short transaction per batch."""
    if connection.vendor == "postgresql":
        for start in range(0, len(rows), BULK_BATCH):
            _copy_update(columns, casts, rows[start:start + BULK_BATCH])
        return
    sets = ", ".join(f"{col} = %s" for col in columns)
    for start in range(0, len(rows), PREDICTION_BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {_ITEMS} SET {sets} WHERE id = %s",
                               rows[start:start + PREDICTION_BATCH])
        _checkpoint()


def _copy_update(columns: Sequence[str], casts: Sequence[str], rows: list[tuple]) -> None:
    """PostgreSQL: COPY ``rows`` into a temporary table, then one ``UPDATE ... FROM`` it, in one
    transaction. Rows whose values are already stored are not rewritten (no new row version,
    no index entries): a retrain changes few suggestions once the model settles."""
    names = [f"c{k}" for k in range(len(columns))]
    staging = "ingest_staging"
    with transaction.atomic(), connection.cursor() as cursor:
        bulk_lock(cursor)
        # Dropped at commit; inside an outer transaction (a test, a caller's atomic) by this.
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{staging}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} ("
            + ", ".join(f"{name} {cast}" for name, cast in zip(names, casts, strict=True))
            + ", id bigint) ON COMMIT DROP")
        with cursor.connection.cursor() as raw, raw.copy(f"COPY {staging} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"ANALYZE {staging}")  # else the planner guesses its size
        sets = ", ".join(f"{col} = s.{name}" for col, name in zip(columns, names, strict=True))
        changed = " OR ".join(f"t.{col} IS DISTINCT FROM s.{name}"
                              for col, name in zip(columns, names, strict=True))
        cursor.execute(f"UPDATE {_ITEMS} AS t SET {sets} FROM {staging} AS s "
                       f"WHERE t.id = s.id AND ({changed})")


def vacuum_items() -> None:
    """PostgreSQL: after a retrain rewrote every item's suggestion, reclaim the old row versions
    and mark the pages all-visible again, so that the dashboard's count stays an index-only scan
    (labeler.insights.services.pool_counts) instead of waiting for autovacuum. Not inside a
    transaction (VACUUM cannot run in one)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {_ITEMS}")


def _checkpoint() -> None:
    """SQLite: fold these pages into the database now, so that the write-ahead log stays short
    and the annotator whose commit crosses SQLite's threshold isn't the one who pays."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except OperationalError:
        pass  # busy: SQLite's own checkpoint will do it


def store_ranking(project: Project, ranked: Sequence[int]) -> None:
    """Make ``ranked`` the project's ranking, in one short transaction."""
    # Found by a read (no index serves query_rank alone), so that the write below is short.
    previous = list(
        Item.objects.filter(project=project, query_rank__lt=UNRANKED).values_list("pk", flat=True)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        bulk_lock(cursor)
        # The swap: only the few hundred ranked items, old and new.
        cursor.executemany(f"UPDATE {_ITEMS} SET query_rank = %s WHERE id = %s",
                           [(UNRANKED, pk) for pk in previous])
        cursor.executemany(f"UPDATE {_ITEMS} SET query_rank = %s WHERE id = %s",
                           [(rank, int(item_id)) for rank, item_id in enumerate(ranked)])


def _suggestion_rows(ids: np.ndarray, predicted: np.ndarray, confidence: np.ndarray
                     ) -> list[tuple]:
    return [
        (int(cls), round(float(conf), 4), int(item_id))
        for item_id, cls, conf in zip(np.asarray(ids).tolist(), np.asarray(predicted).tolist(),
                                      np.asarray(confidence).tolist(), strict=True)
    ]


_SUGGESTION_COLUMNS = (("predicted_class_id", "predicted_confidence"),
                       ("bigint", "double precision"))


def store_predictions(project: Project, ids: np.ndarray, predicted: np.ndarray,
                      confidence: np.ndarray, ranked: Sequence[int]) -> None:
    """Write the ranking (one short transaction) and the suggestions (many short ones).

    A suggestion may come from the previous version for a moment, which is harmless.
    """
    store_ranking(project, ranked)
    _update_rows(*_SUGGESTION_COLUMNS, _suggestion_rows(ids, predicted, confidence))


def backfill_suggestions(ids: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
                         still_current: Callable[[], bool]) -> bool:
    """The rest of the pool's suggestions, written after the version is served (at a million
    items this takes a minute: every row's index entries change). Stops, returning False, when
    ``still_current()`` says a newer version took over (it writes every suggestion itself)."""
    rows = _suggestion_rows(ids, predicted, confidence)
    batch = BULK_BATCH if connection.vendor == "postgresql" else PREDICTION_BATCH
    for start in range(0, len(rows), batch):
        if not still_current():
            return False
        began = time.monotonic()
        _update_rows(*_SUGGESTION_COLUMNS, rows[start:start + batch])
        time.sleep((time.monotonic() - began) * BACKFILL_PAUSE)
    return True


def store_oof(item_ids: np.ndarray, oof_predicted: Sequence[int]) -> None:
    """Each labelled item's out-of-fold prediction (the item table's confusion-matrix cells)."""
    rows = [(int(c), int(i)) for i, c in zip(np.asarray(item_ids).tolist(), oof_predicted,
                                             strict=True)]
    _update_rows(("oof_predicted_id",), ("bigint",), rows)


def store_embed_errors(errors: dict[int, str]) -> None:
    """Items whose image could not be embedded: never scheduled again, shown to the lead."""
    _update_rows(("embed_error",), ("text",), [(msg[:1000], int(pk)) for pk, msg in errors.items()])
