"""Writing a job's results into item rows, in short transactions.

Annotators keep saving labels and taking items while results are ingested, so no transaction may
hold the database for long: on SQLite one writer at a time, on PostgreSQL the rows it updates.
Rows are written in batches of ``PREDICTION_BATCH``: on PostgreSQL one ``UPDATE ... FROM
(VALUES ...)`` statement per batch, on SQLite one prepared statement run per row (SQLite has no
UPDATE ... FROM before 3.33 and gains nothing from it: its statements cost microseconds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.db import OperationalError, connection, transaction

from labeler.items.models import UNRANKED, Item
from labeler.projects.models import Project

#: Rows per write transaction when storing predictions (each holds the write lock a few ms).
PREDICTION_BATCH = 200
_ITEMS = Item._meta.db_table


def _update_rows(columns: Sequence[str], casts: Sequence[str], rows: list[tuple]) -> None:
    """``UPDATE items SET col = value ... WHERE id = row id`` for rows ``(values..., id)``,
    one short transaction per batch."""
    for start in range(0, len(rows), PREDICTION_BATCH):
        batch = rows[start:start + PREDICTION_BATCH]
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                names = [f"c{k}" for k in range(len(columns))]
                marks = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
                sets = ", ".join(f"{col} = v.{name}::{cast}"
                                 for col, name, cast in zip(columns, names, casts, strict=True))
                cursor.execute(
                    f"UPDATE {_ITEMS} AS t SET {sets} FROM (VALUES "
                    + ", ".join([marks] * len(batch))
                    + f") AS v({', '.join(names)}, id) WHERE t.id = v.id::bigint",
                    [value for row in batch for value in row],
                )
            else:
                sets = ", ".join(f"{col} = %s" for col in columns)
                cursor.executemany(f"UPDATE {_ITEMS} SET {sets} WHERE id = %s", batch)
        _checkpoint()


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
        # The swap: only the few hundred ranked items, old and new.
        cursor.executemany(f"UPDATE {_ITEMS} SET query_rank = %s WHERE id = %s",
                           [(UNRANKED, pk) for pk in previous])
        cursor.executemany(f"UPDATE {_ITEMS} SET query_rank = %s WHERE id = %s",
                           [(rank, int(item_id)) for rank, item_id in enumerate(ranked)])


def store_predictions(project: Project, ids: np.ndarray, predicted: np.ndarray,
                      confidence: np.ndarray, ranked: Sequence[int]) -> None:
    """Write the ranking (one short transaction) and the suggestions (many short ones).

    A suggestion may come from the previous version for a moment, which is harmless.
    """
    store_ranking(project, ranked)
    rows = [
        (int(cls), round(float(conf), 4), int(item_id))
        for item_id, cls, conf in zip(np.asarray(ids).tolist(), np.asarray(predicted).tolist(),
                                      np.asarray(confidence).tolist(), strict=True)
    ]
    _update_rows(("predicted_class_id", "predicted_confidence"), ("bigint", "double precision"),
                 rows)


def store_oof(item_ids: np.ndarray, oof_predicted: Sequence[int]) -> None:
    """Each labelled item's out-of-fold prediction (the item table's confusion-matrix cells)."""
    rows = [(int(c), int(i)) for i, c in zip(np.asarray(item_ids).tolist(), oof_predicted,
                                             strict=True)]
    _update_rows(("oof_predicted_id",), ("bigint",), rows)


def store_embed_errors(errors: dict[int, str]) -> None:
    """Items whose image could not be embedded: never scheduled again, shown to the lead."""
    _update_rows(("embed_error",), ("text",), [(msg[:1000], int(pk)) for pk, msg in errors.items()])
