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
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from ..datadir import REPLICAS_DIR
from ..durable import install
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
    holds more than ``compact_at`` outcome lines (see the module doc).

    The compaction of a live journal runs on a thread of its own, beside the cache worker that
    appends: it folds the file as it was when it started into the new file; then, holding the
    append lock only for that, copies the lines appended meanwhile, fsyncs and renames it. The
    worker waits at most for that hand-over, never for the fold."""

    def __init__(self, path: Path, keep: int = KEEP, compact_at: int = COMPACT_AT) -> None:
        assert 0 < keep <= compact_at
        self.path = path
        self.keep, self.compact_at = keep, compact_at
        self.lines = 0  # outcome lines in the file (counted by :meth:`load`, then by appends)
        self._fh: IO[bytes] | None = None
        self._lock = threading.Lock()  # appends vs the compaction's hand-over
        self._compacting: threading.Thread | None = None
        self._next = compact_at  # compact past this many lines (later again after a failure)

    def load(self) -> Iterator[Outcome]:
        """The journal's outcomes in file order (folded ones first), counting its outcome lines;
        a compaction left half-written by a killed process is removed."""
        Path(str(self.path) + TMP_SUFFIX).unlink(missing_ok=True)
        self.lines = 0
        for o in read_journal(self.path):
            self.lines += not isinstance(o, Folded)
            yield o

    def append(self, outcome: Outcome) -> None:
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                end_torn_tail(self.path)
                self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the process's life
            self._fh.write(orjson.dumps(outcome.to_json()) + b"\n")
            self._fh.flush()
            self.lines += 1
            due = self.lines > self._next and self._compacting is None
        if due:
            self._compacting = threading.Thread(target=self._compact_beside, name="llmgw-outcomes-compaction")
            self._compacting.start()

    def compact(self) -> int:
        """Compact now, in this thread (at start: nothing appends). Returns the outcome lines left."""
        self.wait()
        with self._lock:
            self._close()
            self.lines = compact(self.path, self.keep)
            return self.lines

    def _compact_beside(self) -> None:
        tmp = Path(str(self.path) + TMP_SUFFIX)
        try:
            end = self.path.stat().st_size  # appends are whole flushed lines: a line boundary
            kept = fold_into(self.path, self.keep, tmp, end)
            with self._lock:
                with open(self.path, "rb") as src, open(tmp, "ab") as out:
                    src.seek(end)
                    late = src.read()  # appended while folding
                    out.write(late)
                self._close()
                install(tmp, self.path)
                self.lines = kept + late.count(b"\n")
                self._next = self.compact_at
        except OSError as exc:
            log.warning("cannot compact the cache outcome journal: %s", exc)
            self._next = self.lines + self.keep  # try again later, not on every append
        finally:
            self._compacting = None

    def wait(self) -> None:
        """Wait for a running compaction to finish."""
        running = self._compacting
        if running is not None:
            running.join()

    def close(self) -> None:
        self.wait()
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def end_torn_tail(path: Path) -> int:
    """Make the journal end at a line boundary before anything is appended to it, durably
    (fsynced); returns the bytes dropped. A process killed in the middle of an append leaves a
    last line without its newline: an unreadable one (the usual case) is truncated — it was
    skipped on load, and an outcome appended onto it would be unreadable too, lost at the next
    start and to replay; a readable one (only the newline was lost) is kept and ended."""
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    with fh:
        size = fh.seek(0, os.SEEK_END)
        start = _last_line_start(fh, size)
        if start == size:
            return 0  # empty, or ends with a newline
        fh.seek(start)
        tail = fh.read()
        if _parse(tail) is not None:
            fh.seek(size)
            fh.write(b"\n")
            dropped = 0
        else:
            fh.truncate(start)
            dropped = size - start
            log.warning("dropping the torn last line of %s (%d bytes): a crash cut it short", path, dropped)
        fh.flush()
        os.fsync(fh.fileno())
        return dropped


def _last_line_start(fh: IO[bytes], size: int, chunk: int = 1 << 16) -> int:
    """The offset just after the file's last newline (0: it has none)."""
    pos = size
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        fh.seek(pos)
        at = fh.read(step).rfind(b"\n")
        if at >= 0:
            return pos + at + 1
    return 0


def _parse(line: bytes) -> Outcome | None:
    """A journal line's outcome (a :class:`~.bound.Folded` one for a folded line); None if it
    does not parse as one."""
    try:
        d = orjson.loads(line)
        return _folded(d["folded"]) if "folded" in d else Outcome.from_json(d)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return None


def read_journal(path: Path) -> Iterator[Outcome]:
    """The journal's outcomes (folded ones as :class:`~.bound.Folded`) in file order, read line
    by line (a torn or unreadable line is skipped)."""
    for _, o in _lines(path):
        yield o


def _lines(path: Path, end: int | None = None) -> Iterator[tuple[bytes, Outcome]]:
    """Each readable line of the journal's first ``end`` bytes (default: all; newline-terminated)
    with its outcome, in file order."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        read = 0
        for line in fh:
            read += len(line)
            if end is not None and read > end:
                break
            if not line.strip():
                continue
            o = _parse(line)
            if o is None:
                log.warning("skipping an unreadable line of %s", path)
                continue
            yield (line if line.endswith(b"\n") else line + b"\n"), o


def journal_paths(data_dir: Path) -> list[Path]:
    """Every outcome journal of a data directory: its own (a single server's, or one left by a
    former single server) and each replica's (``replicas/<id>/``, by replica id: replicas that
    share a log keep their outcomes apart, each learned by the replica that made it). Only
    those that exist."""
    root = Path(data_dir)
    replicas = root / REPLICAS_DIR
    own = [root / OUTCOMES_FILE]
    theirs = sorted(replicas.glob(f"*/{OUTCOMES_FILE}")) if replicas.is_dir() else []
    return [p for p in own + theirs if p.is_file()]


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
    last ``keep``, in file order) followed by those ``keep`` lines as they were, crash-safely
    (:func:`install`). Returns the outcome lines kept."""
    if not path.exists():
        return 0
    tmp = Path(str(path) + TMP_SUFFIX)
    kept = fold_into(path, keep, tmp)
    install(tmp, path)
    return kept


def fold_into(path: Path, keep: int, out_path: Path, end: int | None = None) -> int:
    """Write to ``out_path`` the compacted form of the journal's first ``end`` bytes (default
    all): its folded lines and outcomes but the last ``keep`` folded per region, then those
    ``keep`` lines as they were. Returns how many were kept."""
    bounds: dict[tuple[str, str], Bound] = {}
    tail: deque[bytes] = deque()  # the last lines only (an outcome is parsed again when it is folded)
    through: float | None = None
    for line, o in _lines(path, end):
        if not isinstance(o, Folded):
            tail.append(line)
            if len(tail) <= keep:
                continue
            o = Outcome.from_json(orjson.loads(tail.popleft()))
        bounds.setdefault((o.route, o.model), Bound()).add(o)
        through = o.known_at if through is None else max(through, o.known_at)
    with open(out_path, "wb") as out:
        for (route, model), b in bounds.items():
            assert through is not None
            out.write(orjson.dumps({"folded": _folded_json(through, route, model, b.totals())}) + b"\n")
        out.writelines(tail)
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
