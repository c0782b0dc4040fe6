"""EmbeddingStore: float16 round-trip, one-read loading, and crash-safe resumable appends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from worker.ml.embedding_store import EmbeddingStore

REPO = Path(__file__).resolve().parents[2]


def _rand(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_round_trip_float16(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "s", dim=8)
    emb = _rand(10)
    store.append(np.arange(10), emb)
    ids, mat = store.load()
    assert ids.dtype == np.int64 and mat.dtype == np.float16
    np.testing.assert_array_equal(ids, np.arange(10))
    np.testing.assert_array_equal(mat, emb.astype(np.float16))
    assert len(store) == 10


def test_compact_gives_one_memory_mapped_npy(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "s")
    store.append(np.array([5, 3]), _rand(2, seed=1))
    store.append(np.array([9, 1]), _rand(2, seed=2))
    store.compact()
    assert list((tmp_path / "s" / "chunks").iterdir()) == []
    npys = sorted(p.name for p in (tmp_path / "s").glob("embeddings.*.npy"))
    assert len(npys) == 1
    ids, mat = EmbeddingStore(tmp_path / "s").load(mmap=True)
    assert isinstance(mat, np.memmap)
    np.testing.assert_array_equal(ids, [1, 3, 5, 9])
    assert mat.shape == (4, 8)
    np.testing.assert_array_equal(np.load(tmp_path / "s" / npys[0]), mat)


def test_last_write_wins_and_no_duplicates(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "s", dim=8)
    store.append(np.array([1, 2, 3]), np.zeros((3, 8), np.float32))
    store.compact()
    store.append(np.array([2]), np.ones((1, 8), np.float32))
    ids, mat = store.load()
    np.testing.assert_array_equal(ids, [1, 2, 3])
    assert mat[1].tolist() == [1.0] * 8
    store.compact()
    ids, mat = store.load()
    np.testing.assert_array_equal(ids, [1, 2, 3])
    assert mat[1].tolist() == [1.0] * 8 and mat[0].tolist() == [0.0] * 8
    np.testing.assert_array_equal(store.take([3, 2]), mat[[2, 1]])
    with pytest.raises(KeyError):
        store.take([42])


def test_missing_and_clear(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "s", dim=8)
    store.append(np.array([2, 4]), _rand(2))
    assert store.missing([1, 2, 3, 4, 3]).tolist() == [1, 3]
    store.clear()
    assert len(store) == 0 and store.missing([2]).tolist() == [2]
    ids, mat = store.load()
    assert ids.size == 0 and mat.shape[0] == 0


def test_rejects_wrong_shapes_and_nan(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / "s", dim=8)
    with pytest.raises(ValueError):
        store.append(np.arange(3), _rand(3, dim=4))
    with pytest.raises(ValueError):
        store.append(np.arange(3), _rand(2))
    bad = _rand(1)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        store.append(np.array([1]), bad)
    EmbeddingStore(tmp_path / "s2", dim=8).append(np.array([1]), _rand(1))
    with pytest.raises(ValueError):
        EmbeddingStore(tmp_path / "s2", dim=16)  # a store never mixes dimensions


_WORKER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from worker.ml.embedding_store import EmbeddingStore
    root, crash_after = sys.argv[1], int(sys.argv[2])
    all_ids = np.arange(100)
    store = EmbeddingStore(root, dim=4)
    todo = store.missing(all_ids)
    for n, start in enumerate(range(0, len(todo), 7)):
        batch = todo[start:start + 7]
        if n == crash_after:
            # Die in the middle of writing a chunk: a half-written temp file stays behind.
            tmp = os.path.join(root, "chunks", "chunk-99999999999999999999-dead.npz.1.ab.tmp")
            with open(tmp, "wb") as f:
                f.write(b"PK\\x03\\x04 half a chunk")
            os._exit(137)
        store.append(batch, np.repeat(batch[:, None], 4, axis=1).astype(np.float32))
    store.compact()
    """
)


def test_resume_after_crash_leaves_exactly_one_embedding_per_item(tmp_path: Path) -> None:
    script = tmp_path / "embed_job.py"
    script.write_text(_WORKER)
    root = tmp_path / "store"
    first = subprocess.run([sys.executable, str(script), str(root), "5", str(REPO)])
    assert first.returncode == 137
    partial = EmbeddingStore(root)
    assert len(partial) == 35  # five whole batches of 7, nothing from the interrupted one
    second = subprocess.run([sys.executable, str(script), str(root), "-1", str(REPO)])
    assert second.returncode == 0
    ids, mat = EmbeddingStore(root).load()
    np.testing.assert_array_equal(ids, np.arange(100))
    np.testing.assert_array_equal(mat[:, 0], np.arange(100).astype(np.float16))
    # A third run has nothing left to do and changes nothing.
    assert EmbeddingStore(root).missing(range(100)).size == 0
    assert not any(p.suffix == ".npz" for p in (root / "chunks").iterdir())


def test_crash_during_compaction_is_harmless(tmp_path: Path, monkeypatch) -> None:
    store = EmbeddingStore(tmp_path / "s", dim=8)
    store.append(np.array([1, 2]), _rand(2))
    store.compact()
    store.append(np.array([2, 3]), _rand(2, seed=5))
    real_unlink = EmbeddingStore._unlink

    def crash(self: EmbeddingStore, path: str) -> None:
        if path.endswith(".npz"):
            raise KeyboardInterrupt("killed after the manifest switch, before chunk cleanup")
        real_unlink(self, path)

    monkeypatch.setattr(EmbeddingStore, "_unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        store.compact()
    monkeypatch.undo()
    ids, mat = EmbeddingStore(tmp_path / "s").load()
    np.testing.assert_array_equal(ids, [1, 2, 3])
    np.testing.assert_array_equal(mat[1:], _rand(2, seed=5).astype(np.float16))
    store.compact()
    assert len(EmbeddingStore(tmp_path / "s")) == 3
    assert os.listdir(tmp_path / "s" / "chunks") == []


def test_many_appends_compact_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EmbeddingStore, "max_chunks", 4)
    store = EmbeddingStore(tmp_path / "s", dim=8)
    for i in range(10):
        store.append(np.array([i]), _rand(1, seed=i))
    assert len(list((tmp_path / "s" / "chunks").glob("*.npz"))) < 4
    ids, mat = store.load()
    assert ids.tolist() == list(range(10))
    np.testing.assert_array_equal(mat[7], _rand(1, seed=7)[0].astype(np.float16))


def test_store_on_a_file_url(tmp_path: Path) -> None:
    """The same store through an fsspec URL (the storage interface): a setting, not new code."""
    store = EmbeddingStore(f"file://{tmp_path}/u", dim=8)
    store.append(np.array([4, 2]), _rand(2, seed=3))
    store.compact()
    store.append(np.array([2]), np.ones((1, 8), np.float32))
    ids, mat = EmbeddingStore(tmp_path / "u").load()
    assert ids.tolist() == [2, 4] and mat[0].tolist() == [1.0] * 8
