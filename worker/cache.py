"""A worker's local copy of the store objects it has read, so a retrain does not download the
project's embeddings (1M x 1280 float16: 2.6 GB) again.

Only immutable objects are cached: a store's base generations (uniquely named when written) and
its chunk files (named by their item range, and keyed here by name *and* the version the listing
reports: an object store's ETag, or size and modification time), so a key never names two
contents. Entries live in ``LABELER_WORKER_CACHE_DIR`` (default ``~/.cache/labeler``), at most
``LABELER_WORKER_CACHE_MB`` megabytes (default 20480); the least recently used go first. Several
worker processes of one machine may share the folder: entries appear by an atomic rename, and a
file evicted while another process has it memory-mapped stays readable there (POSIX unlink).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["ObjectCache", "worker_cache"]


class ObjectCache:
    """Files by key in one folder, bounded in size, least recently used evicted first."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str, fetch: Callable[[], bytes]) -> Path:
        """The local file for ``key``; ``fetch()`` (a download) only when it is not here."""
        path = self._path(key)
        if path.exists():
            now = time.time()
            try:
                os.utime(path, (now, now))  # recently used: evicted last
                return path
            except FileNotFoundError:  # another process evicted it just now
                pass
        data = fetch()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> None:
        """Remove the least recently used entries until the folder fits ``max_bytes``."""
        entries = []
        for p in self.folder.iterdir():
            if p.suffix == ".tmp":
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            total -= size


def worker_cache() -> ObjectCache | None:
    """The cache configured by the environment; None when ``LABELER_WORKER_CACHE_MB`` is 0."""
    megabytes = int(os.environ.get("LABELER_WORKER_CACHE_MB") or 20480)
    if megabytes <= 0:
        return None
    folder = os.environ.get("LABELER_WORKER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "labeler")
    return ObjectCache(folder, megabytes * 1024 * 1024)
