"""Files replaced whole: a reader, or the next start after a crash, sees the old file or the new
one, never a part of either.

:func:`write_atomic` writes a file's new content beside it under a name of its own, makes it
durable, renames it over the file and makes the rename durable; :func:`install` does the last
three steps for a file its caller wrote. Every write is checked to the last byte: ``os.write``
on a disk that fills up returns a short count without an error, and renaming that over a file
replaced it with a part of itself (the secrets file, holding every credential and the key-hashing
pepper, could be cut this way). A failure leaves the old file as it was, removes the temporary
file and raises.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "doc.json"
>>> write_atomic(p, b'{"a": 1}', mode=0o600)
>>> p.read_bytes(), oct(p.stat().st_mode & 0o777), sorted(q.name for q in p.parent.iterdir())
(b'{"a": 1}', '0o600', ['doc.json'])
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` whole to ``fd``: a short write (a disk filling up) is continued, and the
    write that finds no room raises ``OSError`` (ENOSPC)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_path(path: Path) -> None:
    """Make ``path`` durable: a file's content, or a directory's entries (a rename into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install(tmp: Path, path: Path) -> None:
    """Make the written file ``tmp`` the file ``path``: fsync it, rename it over ``path``, fsync
    the directory (killed at any point, ``path`` is the old file or the new one, whole)."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_atomic(path: Path, data: bytes, mode: int | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``data``, with permissions ``mode`` (None: those of the file it
    replaces, 0o644 for a new one). The temporary file is named uniquely in ``path``'s directory
    (two writers never share it) and removed on any failure. ``durable=False`` (a file that
    lives only while its process does) skips both fsyncs."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)
