"""Float16 embedding storage for one (project, backbone): appendable, crash-safe, loads in one read.

Layout of a store folder:
    manifest.json       {"format": 1, "dim": D, "generation": G, "base": B, "count": N} (atomic)
    ids.B.npy           int64 (N,), sorted, unique      \\ the compacted base (B: "G-<rand>",
    embeddings.B.npy    float16 (N, D), row i <-> ids[i] / never reused); mmap-able, one read
    chunks/chunk-<ns>-<rand>.npz   appended batches (ids + embeddings), newest name sorts last
    chunks/chunk-range-<first>-<last>.npz   an embedding job's chunk (put(): named by its range)
    *.tmp                     a write in progress or one a crash interrupted; never read

Why this shape: a retrain wants the whole matrix in one read (one .npy, memory-mapped), while the
embedding task appends batch by batch and may be killed at any moment. Every file becomes visible
only through os.replace of a fully written, fsynced temporary file, so a crash leaves either the
old state or the new one, never half a chunk. The base is versioned by generation and selected by
the manifest, because replacing two files (ids + matrix) cannot be atomic otherwise. Rows for the
same id are resolved as "last write wins" (base, then chunks in name order), so a chunk that was
merged but not yet deleted when a compaction crashed can never produce duplicates.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from worker import storage
from worker.cache import worker_cache

__all__ = ["EmbeddingStore"]

_FORMAT = 1
_MANIFEST = "manifest.json"
_CHUNKS = "chunks"
_STALE_TMP_S = 3600.0  # temp files older than this belong to a dead writer


def _last_wins(ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last row of every id, sorted by id."""
    if len(ids) == 0:
        return ids, rows
    rev = ids[::-1]
    uniq, first = np.unique(rev, return_index=True)
    keep = len(ids) - 1 - first
    return uniq.astype(np.int64, copy=False), rows[keep]


def _base_name(manifest: dict | None) -> str | None:
    """The base generation's file infix (``ids.<it>.npy``); older manifests name the number."""
    if not manifest or manifest.get("generation") is None:
        return None
    return manifest.get("base") or str(manifest["generation"])


def _version(info: dict) -> str:
    """What tells two contents of one object name apart, from a listing's entry."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    when = info.get("LastModified") or info.get("mtime") or info.get("created") or ""
    return f"{info.get('size')}-{when}"


class EmbeddingStore:
    """Embeddings of one (project, backbone) in a folder; safe against crashes mid-write.

    The folder is a storage location (worker.storage): a local path or a URL. Appends may
    come from several writers at once (each chunk is its own object); compaction is one
    writer's job (the embedding job's finisher on the web side, once all its chunks are in). Readers may run concurrently
    and always see a consistent state.
    """

    max_chunks = 1024  # append() compacts by itself once this many chunks accumulate

    def __init__(self, root: str | os.PathLike[str], dim: int | None = None) -> None:
        self.loc = storage.Location(root)
        self.root = Path(self.loc.path) if self.loc.local else self.loc.url
        self._fs, self._path = self.loc.fs, self.loc.path.rstrip("/")
        # Remote stores: objects read once are kept on this machine (worker.cache).
        self._cache = None if self.loc.local else worker_cache()
        self._versions: dict[str, str] = {}
        self._fs.makedirs(f"{self._path}/{_CHUNKS}", exist_ok=True)
        manifest = self._manifest()
        stored = manifest.get("dim") if manifest else None
        if stored is None:
            stored = self._dim_from_chunks()
        if dim is not None and stored is not None and int(dim) != int(stored):
            raise ValueError(f"{self.root} holds {stored}-d embeddings, not {dim}-d")
        self.dim: int | None = int(stored) if stored is not None else dim

    # ------------------------------------------------------------------ writing

    def append(self, ids: np.ndarray, embeddings: np.ndarray) -> None:
        """Store a batch atomically (float16). Re-appending an id replaces its embedding."""
        if self._write_chunk(f"{time.time_ns():020d}-{secrets.token_hex(4)}", ids, embeddings):
            if len(self._chunk_files()) >= self.max_chunks:
                # Thousands of small files make ids()/load() slow; merge them now and then.
                self.compact()

    def put(self, name: str, ids: np.ndarray, embeddings: np.ndarray) -> None:
        """Store one named chunk atomically, replacing the object of that name if there is one:
        an embedding job's chunk written again (a worker presumed dead, its chunk redone by
        another) replaces itself instead of adding a copy. Never compacts: with several
        writers, compaction is the job's finisher's alone (labeler.training.embedding)."""
        self._write_chunk(name, ids, embeddings)

    def _write_chunk(self, name: str, ids: np.ndarray, embeddings: np.ndarray) -> bool:
        ids = np.asarray(ids).reshape(-1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] != len(ids):
            raise ValueError(f"embeddings must be (len(ids), dim); got {emb.shape} for {len(ids)}")
        if len(ids) == 0:
            return False
        if self.dim is None:
            self.dim = int(emb.shape[1])
        if emb.shape[1] != self.dim:
            raise ValueError(f"store holds {self.dim}-d embeddings, got {emb.shape[1]}-d")
        emb16 = emb.astype(np.float16)
        if not np.isfinite(emb16).all():
            raise ValueError("embeddings contain NaN/inf (failed images must not be stored)")

        def write(f) -> None:
            np.savez(f, ids=ids, embeddings=emb16)

        storage.write_atomic(self.loc.child(_CHUNKS, f"chunk-{name}.npz"), write)
        if self._manifest() is None:
            # Record the dimension early so a store holding only chunks still knows it.
            self._write_manifest(generation=None, count=0)
        return True

    def compact(self) -> None:
        """Merge the base and all chunks into one new base generation, atomically."""
        self._cleanup_tmp(max_age=_STALE_TMP_S)
        manifest = self._manifest()
        chunk_files = self._chunk_files()
        if not chunk_files:
            return
        ids, emb = self._merge(manifest, chunk_files)
        old_base = _base_name(manifest)
        gen = ((manifest.get("generation") if manifest else None) or 0) + 1
        # A new name each time (never reused, even after clear()): a worker's cache keys base
        # files by name (worker.cache).
        base = f"{gen}-{secrets.token_hex(4)}"
        storage.write_atomic(self.loc.child(f"ids.{base}.npy"), lambda f: np.save(f, ids))
        storage.write_atomic(self.loc.child(f"embeddings.{base}.npy"), lambda f: np.save(f, emb))
        self._write_manifest(generation=gen, count=len(ids), base=base)  # the switch: atomic
        for p in chunk_files:
            self._unlink(p)
        if old_base is not None:
            for stem in ("ids", "embeddings"):
                self._unlink(f"{self._path}/{stem}.{old_base}.npy")

    def clear(self) -> None:
        """Remove every stored embedding (the folder itself stays)."""
        self._unlink(f"{self._path}/{_MANIFEST}")
        for p in (self._fs.glob(f"{self._path}/ids.*.npy")
                  + self._fs.glob(f"{self._path}/embeddings.*.npy") + self._chunk_files()):
            self._unlink(p)
        self._cleanup_tmp(max_age=0.0)
        self.dim = None

    # ------------------------------------------------------------------ reading

    def load(self, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 sorted unique, float16 (n, dim)); memory-mapped when already compacted."""
        for attempt in range(5):
            try:
                manifest = self._manifest()
                chunk_files = self._chunk_files()
                if not chunk_files:
                    ids, emb = self._base(manifest, mmap=mmap)
                    return ids, emb
                return self._merge(manifest, chunk_files)
            except FileNotFoundError:
                # A concurrent compaction swapped files under us; read the new state.
                if attempt == 4:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def ids(self) -> np.ndarray:
        """The ids that have an embedding (int64, sorted, unique)."""
        for attempt in range(5):
            try:
                manifest = self._manifest()
                parts = [self._base_ids(manifest)]
                for p in self._chunk_files():
                    with self._npz(p) as z:
                        parts.append(z["ids"])
                if len(parts) == 1:  # compacted: the base is sorted and unique already
                    return parts[0].astype(np.int64, copy=False)
                return np.unique(np.concatenate(parts)).astype(np.int64, copy=False)
            except FileNotFoundError:
                if attempt == 4:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def missing(self, ids: Iterable[int]) -> np.ndarray:
        """Which of `ids` have no embedding yet (input order, each once): the work left to do."""
        wanted = np.fromiter((int(i) for i in ids), dtype=np.int64)
        if wanted.size == 0:
            return wanted
        _, first = np.unique(wanted, return_index=True)
        wanted = wanted[np.sort(first)]
        return wanted[~np.isin(wanted, self.ids())]

    def take(self, ids: Iterable[int]) -> np.ndarray:
        """float16 rows for `ids`, in that order; KeyError names ids that are not stored."""
        wanted = np.fromiter((int(i) for i in ids), dtype=np.int64)
        have, emb = self.load()
        pos = np.searchsorted(have, wanted)
        pos = np.minimum(pos, max(len(have) - 1, 0))
        found = (have[pos] == wanted) if len(have) else np.zeros(len(wanted), dtype=bool)
        if not found.all():
            raise KeyError(f"no embedding for ids {wanted[~found][:10].tolist()}")
        return np.asarray(emb[pos])

    def __len__(self) -> int:
        return int(len(self.ids()))

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.root)!r}, dim={self.dim})"

    # ------------------------------------------------------------------ internals

    def _manifest(self) -> dict | None:
        try:
            return json.loads(self._fs.cat_file(f"{self._path}/{_MANIFEST}"))
        except FileNotFoundError:
            return None

    def _write_manifest(self, generation: int | None, count: int, base: str | None = None) -> None:
        data = {"format": _FORMAT, "dim": self.dim, "generation": generation, "count": count,
                "base": base}
        payload = json.dumps(data).encode()
        storage.write_atomic(self.loc.child(_MANIFEST), lambda f: f.write(payload))

    def _chunk_files(self) -> list[str]:
        if self.loc.local:
            return sorted(self._fs.glob(f"{self._path}/{_CHUNKS}/chunk-*.npz"))
        # One listing gives names and versions (ETag, or size and time): the cache's keys.
        found = self._fs.find(f"{self._path}/{_CHUNKS}", detail=True)
        names = []
        for path, info in found.items():
            if path.rsplit("/", 1)[-1].startswith("chunk-") and path.endswith(".npz"):
                names.append(path)
                self._versions[path] = _version(info)
        return sorted(names)

    def _unlink(self, path: str) -> None:
        try:
            self._fs.rm_file(path)
        except FileNotFoundError:
            pass

    def _npy(self, path: str, mmap: bool = False) -> np.ndarray:
        """A .npy object: memory-mapped when local (or cached) and asked for, else read whole."""
        if self.loc.local:
            return np.load(path, mmap_mode="r" if mmap else None)
        if self._cache is not None:  # base files are never rewritten under their name
            local = self._cache.get(f"{self.loc.fs.protocol}:{path}", lambda: self._fs.cat_file(path))
            return np.load(local, mmap_mode="r" if mmap else None)
        return np.load(io.BytesIO(self._fs.cat_file(path)))

    def _npz(self, path: str):
        if self.loc.local:
            return np.load(path)
        version = self._versions.get(path)
        if self._cache is not None and version:
            key = f"{self.loc.fs.protocol}:{path}@{version}"
            return np.load(self._cache.get(key, lambda: self._fs.cat_file(path)))
        return np.load(io.BytesIO(self._fs.cat_file(path)))

    def _dim_from_chunks(self) -> int | None:
        for p in self._chunk_files():
            with self._npz(p) as z:
                return int(z["embeddings"].shape[1])
        return None

    def _base_ids(self, manifest: dict | None) -> np.ndarray:
        base = _base_name(manifest)
        if base is None:
            return np.empty(0, dtype=np.int64)
        return self._npy(f"{self._path}/ids.{base}.npy")

    def _base(self, manifest: dict | None, mmap: bool) -> tuple[np.ndarray, np.ndarray]:
        base = _base_name(manifest)
        if base is None:
            return np.empty(0, dtype=np.int64), np.empty((0, self.dim or 0), dtype=np.float16)
        ids = self._npy(f"{self._path}/ids.{base}.npy")
        emb = self._npy(f"{self._path}/embeddings.{base}.npy", mmap=mmap)
        return ids, emb

    def _merge(
        self, manifest: dict | None, chunk_files: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        base_ids, base_emb = self._base(manifest, mmap=True)
        id_parts, emb_parts = [base_ids], [np.asarray(base_emb)]
        for p in chunk_files:
            with self._npz(p) as z:
                id_parts.append(z["ids"])
                emb_parts.append(z["embeddings"])
        dim = self.dim if self.dim is not None else emb_parts[-1].shape[1]
        emb_parts = [e.reshape(-1, dim) for e in emb_parts]
        return _last_wins(np.concatenate(id_parts), np.concatenate(emb_parts))

    def _cleanup_tmp(self, max_age: float) -> None:
        if not self.loc.local:
            return  # temporary files exist only on local disks (object stores PUT whole)
        now = time.time()
        for folder in (Path(self._path), Path(self._path) / _CHUNKS):
            for p in folder.glob("*.tmp"):
                try:
                    if now - p.stat().st_mtime >= max_age:
                        p.unlink()
                except FileNotFoundError:
                    pass
