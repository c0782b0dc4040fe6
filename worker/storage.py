"""Storage that GPU workers and the web side share: files named by *location*.

A location is a local path or an fsspec URL (``file:///srv/labeler/...``, ``s3://bucket/...``
through s3fs, with the endpoint and region of worker.s3config: a setting, not a code change).
An item's image may also be an ``https://`` URL (an import with --no-copy): read_bytes fetches
it through the SSRF guard (worker.net_safety), never from a private address. Every object is written once and becomes
visible whole: on a local disk through a fsynced temporary file and a rename, on object stores
because a PUT is atomic. Workers get every location they need in their task message, so a GPU
machine needs only access to this storage and the broker (no database, no Django settings).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec
import joblib
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from worker import net_safety, s3config

__all__ = [
    "Location", "join", "exists", "read_bytes", "fetch_url", "write_atomic", "save_arrays", "load_arrays",
    "dump_object", "load_object", "remove",
]


class Location:
    """One location split into its filesystem and its path on it."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.url = os.fspath(location)
        options = s3config.fsspec_options() if self.url.startswith("s3://") else {}
        fs, path = fsspec.core.url_to_fs(self.url, **options)
        self.fs: fsspec.AbstractFileSystem = fs
        self.path: str = path

    @property
    def local(self) -> bool:
        """On this machine's disk: renames are atomic and files can be memory-mapped."""
        return isinstance(self.fs, LocalFileSystem)

    def child(self, *parts: str) -> Location:
        return Location(join(self.url, *parts))

    def __repr__(self) -> str:
        return f"Location({self.url!r})"


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """``base/part/...`` for paths and URLs alike."""
    out = os.fspath(base).rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def exists(location: str | os.PathLike[str]) -> bool:
    loc = Location(location)
    return loc.fs.exists(loc.path)


def read_bytes(location: str | os.PathLike[str]) -> bytes:
    """The whole object (an image for the featurizer, a small result file)."""
    if "://" not in os.fspath(location):  # the common case: no fsspec overhead per image
        with open(location, "rb") as f:
            return f.read()
    if os.fspath(location).startswith(("http://", "https://")):
        return fetch_url(os.fspath(location))
    loc = Location(location)
    with loc.fs.open(loc.path, "rb") as f:
        return f.read()


def fetch_url(url: str) -> bytes:
    """An image an item references by URL, fetched through the SSRF guard (redirects checked).
    FileNotFoundError when the server does not answer 200, as for a missing file."""
    limit = int(os.environ.get("LABELER_MAX_IMAGE_BYTES") or 50 * 1024 * 1024)
    got = net_safety.fetch(url, max_bytes=limit)
    if got.status != 200:
        raise FileNotFoundError(f"{url}: the server answered HTTP {got.status}")
    return got.body


@contextmanager
def open_read(location: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    loc = Location(location)
    with loc.fs.open(loc.path, "rb") as f:
        yield f


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_atomic(location: str | os.PathLike[str] | Location,
                 write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(fileobj)``; readers see the old object or the new one, never half."""
    loc = location if isinstance(location, Location) else Location(location)
    parent = loc.path.rsplit("/", 1)[0]
    loc.fs.makedirs(parent, exist_ok=True)
    if not loc.local:
        buf = io.BytesIO()
        write(buf)
        loc.fs.pipe_file(loc.path, buf.getvalue())  # one PUT: atomic on object stores
        return
    tmp = f"{loc.path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, loc.path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(parent)


def save_arrays(location: str | os.PathLike[str], **arrays: Any) -> None:
    """A results file: named numpy arrays in one .npz."""
    write_atomic(location, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


def load_arrays(location: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    with open_read(location) as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def dump_object(location: str | os.PathLike[str], obj: Any) -> None:
    """A fitted head (joblib), written atomically."""
    write_atomic(location, lambda f: joblib.dump(obj, f))


def load_object(location: str | os.PathLike[str]) -> Any:
    with open_read(location) as f:
        return joblib.load(f)


def remove(location: str | os.PathLike[str]) -> None:
    loc = Location(location)
    try:
        loc.fs.rm(loc.path)
    except FileNotFoundError:
        pass
