"""The journal of verified outcomes (``<data-dir>/cache-outcomes.jsonl``): one JSON line per
comparison of a cached answer with a fresh one, in the order they were learned.

The learned thresholds of the false-hit bound (:mod:`.bound`) are a function of these lines
alone: the live cache reloads them on start (its thresholds survive a restart), and replay
folds them into a candidate's thresholds in time order (``Caches.attach_outcomes``). Written
on the cache worker only (one writer); a line is flushed as it is written.

**Bounded** (docs/cache.md#the-outcome-journal-is-bounded): once it holds more than
:data:`COMPACT_AT` outcome lines, the journal is compacted — every outcome but the last
:data:`KEEP` is folded into one ``{"folded": ...}`` line per region (a :class:`~.bound.Folded`
outcome: the region's :class:`~.bound.Totals` as of the last folded outcome, ``through``), and
the last :data:`KEEP` stay as they were. A bound learns the folded line as it would have
learned the outcomes it folds, so the live thresholds are the same after a compaction, and a
replay whose window starts after ``through`` decides exactly as with the whole journal
(:func:`folded_through` says from when). The rewrite is crash-safe: a new file is written
beside the journal, fsynced and renamed over it (and the directory fsynced), so a process
killed at any point leaves either the old journal or the new one, whole.

>>> import tempfile, pathlib
>>> from .bound import Outcome
>>> path = pathlib.Path(tempfile.mkdtemp()) / OUTCOMES_FILE
>>> j = OutcomeJournal(path)
>>> j.append(Outcome(1.0, "r", "m", "req_1", "req_2", 0.93, True, "shadow"))
>>> j.close()
>>> [o.similarity for o in load_outcomes(path)]
[0.93]
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .bound import Bound, Folded, Outcome, Totals

log = logging.getLogger("llmgw.cache")

OUTCOMES_FILE = "cache-outcomes.jsonl"
#: outcomes kept line by line by a compaction (the most recent): replay is exact after them
KEEP = 50_000
#: outcome lines past which the journal is compacted (so it never holds more than this many
#: outcome lines, plus one folded line per region)
COMPACT_AT = 2 * KEEP
TMP_SUFFIX = ".compacting"


class OutcomeJournal:
    """Appends outcomes to the journal file (opened on first use) and compacts it when it
    holds more than ``compact_at`` outcome lines (see the module doc)."""

    def __init__(self, path: Path, keep: int = KEEP, compact_at: int = COMPACT_AT) -> None:
        assert 0 < keep <= compact_at
        self.path = path
        self.keep, self.compact_at = keep, compact_at
        self.lines = 0  # outcome lines in the file (counted by :meth:`load`, then by appends)
        self._fh: IO[bytes] | None = None

    def load(self) -> Iterator[Outcome]:
        """The journal's outcomes in file order (folded ones first), counting its outcome lines;
        a compaction left half-written by a killed process is removed."""
        Path(str(self.path) + TMP_SUFFIX).unlink(missing_ok=True)
        self.lines = 0
        for o in read_journal(self.path):
            self.lines += not isinstance(o, Folded)
            yield o

    def append(self, outcome: Outcome) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the process's life
        self._fh.write(orjson.dumps(outcome.to_json()) + b"\n")
        self._fh.flush()
        self.lines += 1
        if self.lines > self.compact_at:
            self.compact()

    def compact(self) -> int:
        """Fold all but the last ``keep`` outcomes into one line per region (crash-safe rewrite).
        Returns the outcome lines left."""
        self.close()
        self.lines = compact(self.path, self.keep)
        return self.lines

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_journal(path: Path) -> Iterator[Outcome]:
    """The journal's outcomes (folded ones as :class:`~.bound.Folded`) in file order, read line
    by line (a torn or unreadable line is skipped)."""
    for _, o in _lines(path):
        yield o


def _lines(path: Path) -> Iterator[tuple[bytes, Outcome]]:
    """Each readable line of the journal (newline-terminated) with its outcome, in file order."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                d = orjson.loads(line)
                o = _folded(d["folded"]) if "folded" in d else Outcome.from_json(d)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
                log.warning("skipping an unreadable line of %s", path)
                continue
            yield (line if line.endswith(b"\n") else line + b"\n"), o


def load_outcomes(path: Path, since: float | None = None, until: float | None = None) -> list[Outcome]:
    """The journal's outcomes known in ``[since, until)``; a folded one is known at its ``through``."""
    return [
        o
        for o in read_journal(path)
        if (since is None or o.known_at >= since) and (until is None or o.known_at < until)
    ]


def folded_through(path: Path) -> float | None:
    """The time up to which the journal's outcomes are folded (None: it was never compacted).
    Read from its first lines only (a compaction writes the folded lines first)."""
    if not path.exists():
        return None
    through = None
    with open(path, "rb") as fh:
        for line in fh:
            if not line.startswith(b'{"folded"'):
                break
            try:
                through = max(through or 0.0, float(orjson.loads(line)["folded"]["through"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return through


def compact(path: Path, keep: int) -> int:
    """Rewrite the journal at ``path`` as one folded line per region (every outcome but the
    last ``keep``, in file order) followed by those ``keep`` lines as they were: written to a
    new file, fsynced, renamed over the journal, directory fsynced. Returns the outcome lines kept."""
    if not path.exists():
        return 0
    bounds: dict[tuple[str, str], Bound] = {}
    tail: deque[bytes] = deque()  # the last lines only (an outcome is parsed again when it is folded)
    through: float | None = None
    for line, o in _lines(path):
        if not isinstance(o, Folded):
            tail.append(line)
            if len(tail) <= keep:
                continue
            o = Outcome.from_json(orjson.loads(tail.popleft()))
        bounds.setdefault((o.route, o.model), Bound()).add(o)
        through = o.known_at if through is None else max(through, o.known_at)
    tmp = Path(str(path) + TMP_SUFFIX)
    with open(tmp, "wb") as out:
        for (route, model), b in bounds.items():
            assert through is not None
            out.write(orjson.dumps({"folded": _folded_json(through, route, model, b.totals())}) + b"\n")
        out.writelines(tail)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return len(tail)


def _folded_json(through: float, route: str, model: str, t: Totals) -> dict[str, Any]:
    return {
        "through": through, "route": route, "model": model, "bins": t.bins,
        "served": [t.served_n, t.served_wrong], "floors": t.floors,
    }  # fmt: skip


def _folded(d: dict[str, Any]) -> Folded:
    bins = tuple((int(b), int(n), int(w)) for b, n, w in d["bins"])
    floors = tuple((str(s), float(f)) for s, f in d["floors"])
    totals = Totals(bins, int(d["served"][0]), int(d["served"][1]), floors)
    return Folded.of(float(d["through"]), str(d["route"]), str(d["model"]), totals)
