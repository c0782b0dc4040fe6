"""Nearest neighbours of an item in embedding space: near-duplicates and look-alikes.

Exact, brute force: cosine similarity of the item against every row of the project's
memory-mapped float16 store, in float32 blocks (BLAS matrix-vector products), then the top k.
At 100,000 items x 1,280 dims that is one pass over 250 MB (see benchmarks/item_table.py for
the time); an approximate index would only pay off far beyond the sizes a web request sees.
"""

from __future__ import annotations

import numpy as np

BLOCK = 16384
#: Cosine similarity above which two images are shown as near-duplicates.
DUPLICATE_SIMILARITY = 0.97


def nearest_rows(ids: np.ndarray, matrix, item_id: int, k: int = 8) -> list[tuple[int, float]]:
    """(item id, cosine similarity) of the k rows most similar to ``item_id``'s, best first;
    empty when the item has no embedding."""
    n = len(ids)
    pos = int(np.searchsorted(ids, item_id))
    if n < 2 or pos >= n or ids[pos] != item_id:
        return []
    q = np.asarray(matrix[pos], dtype=np.float32)
    q /= max(float(np.linalg.norm(q)), 1e-12)
    sims = np.empty(n, dtype=np.float32)
    for start in range(0, n, BLOCK):
        block = np.asarray(matrix[start:start + BLOCK], dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        sims[start:start + len(block)] = (block @ q) / np.maximum(norms, 1e-12)
    sims[pos] = -np.inf
    k = min(k, n - 1)
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return [(int(ids[t]), float(sims[t])) for t in top]


def nearest(project, item_id: int, k: int = 8) -> list[tuple[int, float]]:
    """Neighbours of an item in the project's current embedding store."""
    from . import services

    ids, matrix = services.store_of(project).load()
    return nearest_rows(ids, matrix, item_id, k)


def neighbour_rows(project, item, k: int = 8) -> list[dict] | None:
    """For the item page: each neighbour's item, similarity, current label and whether it looks
    like a near-duplicate; None when the item has no embedding yet."""
    from labeler.items.models import Item

    found = nearest(project, item.pk, k)
    if not found:
        return None
    items = Item.objects.select_related("current_label").in_bulk([i for i, _ in found])
    return [
        {"item": items[i], "similarity": s, "label": items[i].current_label,
         "duplicate": s >= DUPLICATE_SIMILARITY}
        for i, s in found if i in items
    ]
