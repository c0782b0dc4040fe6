"""The worker's cache of store objects (issue #16): a second load of a remote store reads no
embedding object from storage, a redone chunk (same name, new content) is not served stale, and
the cache stays within its size, least recently used out first."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from worker.cache import ObjectCache
from worker.ml.embedding_store import EmbeddingStore


@pytest.fixture
def reads(monkeypatch, tmp_path):
    """Object reads from the (in-memory, non-local) store, by file name."""
    counted: Counter[str] = Counter()
    original = MemoryFileSystem.cat_file

    def cat_file(self, path, *args, **kwargs):
        counted[path.rsplit("/", 1)[-1]] += 1
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "cat_file", cat_file)
    monkeypatch.setenv("LABELER_WORKER_CACHE_DIR", str(tmp_path / "cache"))
    return counted


def _data_reads(counted: Counter[str]) -> int:
    """Reads of embedding objects (the manifest, a few bytes, is read every time: it says
    which objects make the store now)."""
    return sum(n for name, n in counted.items() if name != "manifest.json")


def test_a_second_load_reads_nothing_from_storage(reads):
    url = f"memory://labeler-{uuid.uuid4().hex}/store"
    store = EmbeddingStore(url)
    rng = np.random.default_rng(0)
    store.put("range-1-500", np.arange(1, 501), rng.normal(size=(500, 16)))
    store.compact()  # a base generation...
    store.put("range-501-600", np.arange(501, 601), rng.normal(size=(100, 16)))  # ...and a chunk
    reads.clear()
    ids, emb = EmbeddingStore(url).load()  # a retrain on this worker: downloads once
    assert len(ids) == 600 and _data_reads(reads) == 3  # base ids + base matrix + one chunk
    reads.clear()
    again_ids, again = EmbeddingStore(url).load()  # the next retrain
    assert _data_reads(reads) == 0
    assert (again_ids == ids).all() and np.array_equal(np.asarray(again), np.asarray(emb))

    # The chunk redone (same name, new rows): the listing's version tells it apart.
    store.put("range-501-600", np.arange(501, 601), np.ones((100, 16)))
    reads.clear()
    _, fresh = EmbeddingStore(url).load()
    assert _data_reads(reads) == 1 and (np.asarray(fresh[500:]) == 1).all()


def test_without_a_cache_every_load_downloads(reads, monkeypatch):
    monkeypatch.setenv("LABELER_WORKER_CACHE_MB", "0")
    url = f"memory://labeler-{uuid.uuid4().hex}/store"
    store = EmbeddingStore(url)
    store.put("range-1-10", np.arange(1, 11), np.zeros((10, 4)))
    store.compact()
    EmbeddingStore(url).load()
    reads.clear()
    EmbeddingStore(url).load()
    assert _data_reads(reads) == 2


def test_the_cache_evicts_the_least_recently_used(tmp_path):
    cache = ObjectCache(tmp_path, max_bytes=2500)
    fetched: list[str] = []

    def get(key: str) -> bytes:
        def fetch() -> bytes:
            fetched.append(key)
            return key.encode() * 1000 if len(key) == 1 else b""
        return cache.get(key, fetch).read_bytes()

    get("a")
    get("b")
    get("a")  # a is used again: b is now the least recent (its time set back to be sure)
    past = time.time() - 100
    os.utime(cache._path("b"), (past, past))
    get("c")  # 3000 bytes > 2500: b goes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        cache._path(k).name for k in ("a", "c"))
    get("a")
    assert fetched == ["a", "b", "c"]  # a was never fetched twice
