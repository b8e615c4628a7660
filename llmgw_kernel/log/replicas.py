"""Journals left behind by replicas that did not come back.

A replica that is killed folds its own journal into segments when it starts again under the
same id (``<host>-<slot>`` is stable on one host, and a StatefulSet pod keeps its name). A
Deployment pod does not: its replacement has another name, and the dead pod's journal would
wait forever. So a replica, once it has claimed its own id, also claims every other replica
id that has a journal and that no running process holds (the claim is a ``flock``: a holder
that died released it), folds that journal into that replica's own series of segments, and
lets the id go. The journal of a server that ran alone on the directory (``log/journal/*.wal``,
no replica) is folded the same way: replicas hold the directory lock shared, so no such
server can be running.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .journal import journal_dir, journal_files
from .writer import LogWriter

log = logging.getLogger("llmgw.log")


def orphan_journals(data_dir: str | os.PathLike[str], own: str) -> list[str]:
    """Replica ids other than ``own`` whose journal directory holds a journal file."""
    root = journal_dir(data_dir)
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    return [p.name for p in entries if p.is_dir() and p.name != own and journal_files(p)]


def adopt_orphans(data_dir: str | os.PathLike[str], own: str) -> int:
    """Fold the journals of replicas no running process holds (and of a former single server)
    into their segments; returns how many rows were recovered. Called by a replica after it
    claimed ``own`` and before it serves."""
    from ..datadir import orphan_replicas

    recovered = 0
    for claim in orphan_replicas(data_dir, orphan_journals(data_dir, own)):
        try:
            recovered += _recover(data_dir, claim.id)
        finally:
            claim.release()
    if journal_files(journal_dir(data_dir)):
        recovered += _recover(data_dir, "")
    return recovered


def _recover(data_dir: str | os.PathLike[str], replica: str) -> int:
    writer = LogWriter(Path(data_dir), flush_ms=60_000, replica=replica)  # recovers its journal first
    writer.close()
    if writer.rows_recovered:
        log.warning(
            "adopted %d journaled rows of replica %s, which is not running", writer.rows_recovered, replica or "-"
        )
    return writer.rows_recovered
