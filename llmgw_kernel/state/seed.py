"""Seeding Redis from the request log, the source of truth (docs/deploy.md, "Shared state").

Each data directory has an id (``<data-dir>/state/id``, made once): replicas sharing one
directory share its log and so seed it once; replicas with directories of their own each add
theirs. A Redis that lost its data (restarted without persistence, flushed, replaced) holds no
directory: the first admission of each process then finds its own directory missing and adds
the log's spend of the current windows and the last minute's rate windows, in one script
that also marks the directory seeded, so the spend is added exactly once per Redis lifetime.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..decisions.limits import Limits
from ..durable import fsync_path, write_all

ID_FILE = "id"


def dir_id(data_dir: str | os.PathLike[str]) -> str:
    """This data directory's id in the shared state (created on first use, kept for good)."""
    path = Path(data_dir) / "state" / ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, (secrets.token_hex(8) + "\n").encode())
        os.fsync(fd)  # durable before it has the name: a crash never leaves an empty id
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first writer wins; a concurrent one reads the winner's id
        fsync_path(path.parent)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def seed_args(
    state: Limits, directory: str, member: str, bucket_key: Callable[[tuple], str], expire_at: Callable[[tuple], int],
    key: Callable[..., str],
) -> list[Any]:  # fmt: skip
    """The arguments of :data:`~.scripts.SEED` for the spend and rate windows in ``state``."""
    quads: list[Any] = []
    for bucket, amount in state.committed.items():
        if amount:  # marked seeded by this directory too: a reload that adds it does not add it again
            name, expire = bucket_key(bucket), expire_at(bucket)
            quads += [name, "c", amount, expire, name, f"s:{directory}", 1, expire]
    for (scope, who), window in state.windows.items():
        wkey = key("w", scope, who)
        for sec, requests, tokens in window.buckets:
            if requests:
                quads += [wkey, f"q{sec}", requests, sec + 120]
            if tokens:
                quads += [wkey, f"t{sec}", tokens, sec + 120]
    return [directory, member, len(quads) // 4, *quads]
