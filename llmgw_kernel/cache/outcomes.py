"""The journal of verified outcomes (``<data-dir>/cache-outcomes.jsonl``): one JSON line per
comparison of a cached answer with a fresh one, in the order they were learned.

The learned thresholds of the false-hit bound (:mod:`.bound`) are a function of these lines
alone: the live cache reloads them on start (its thresholds survive a restart), and replay
folds them into a candidate's thresholds in time order (``Caches.attach_outcomes``). Written
on the cache worker only (one writer); a line is flushed as it is written.

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
from pathlib import Path
from typing import IO

import orjson

from .bound import Outcome

log = logging.getLogger("llmgw.cache")

OUTCOMES_FILE = "cache-outcomes.jsonl"


class OutcomeJournal:
    """Appends outcomes to the journal file (opened on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None

    def append(self, outcome: Outcome) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the process's life
        self._fh.write(orjson.dumps(outcome.to_json()) + b"\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_outcomes(path: Path, since: float | None = None, until: float | None = None) -> list[Outcome]:
    """The journal's outcomes known in ``[since, until)`` (a torn last line is skipped)."""
    if not path.exists():
        return []
    out: list[Outcome] = []
    for line in path.read_bytes().splitlines():
        try:
            o = Outcome.from_json(orjson.loads(line))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("skipping an unreadable line of %s", path)
            continue
        if (since is None or o.known_at >= since) and (until is None or o.known_at < until):
            out.append(o)
    return out
