"""The notebooks' data folders: a scratch folder removed when the kernel stops, a stop that
reads as a sentence, and a spend history that a re-run finds again instead of refusing.

A notebook that cannot go on raises :class:`Stop`: IPython shows an exception's
``_render_traceback_`` instead of its traceback, so JupyterLab shows the sentence (and Run All
stops there) rather than a wall of frames ending in it.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..log.reader import open_log
from ..log.segments import list_segments, log_dir

if TYPE_CHECKING:
    from ..spend_history import SpendHistoryReport


_SCRATCH: dict[str, tempfile.TemporaryDirectory[str]] = {}


def scratch_dir(name: str) -> Path:
    """A new empty folder for a notebook's synthetic log and policies (``llmgw-<name>-…`` in the
    system's temporary folder), removed when the kernel stops — or when the notebook asks again
    (its first cell run again starts clean), so runs leave nothing behind. A kernel killed
    outright leaves it for the system's temporary-file cleaning."""
    old = _SCRATCH.pop(name, None)
    if old is not None:
        old.cleanup()
    folder = tempfile.TemporaryDirectory(prefix=f"llmgw-{name}-", ignore_cleanup_errors=True)
    _SCRATCH[name] = folder
    return Path(folder.name)


class Stop(Exception):
    """The notebook cannot go on, for the reason in the message; shown as that sentence alone."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def holds_log(data_dir: str | os.PathLike[str]) -> bool:
    """Whether ``data_dir`` holds a request log (at least one segment)."""
    folder = log_dir(Path(data_dir))
    return folder.exists() and bool(list_segments(folder))


def spend_history(data_dir: str | os.PathLike[str], days: int, start: str, seed: int = 0) -> SpendHistoryReport:
    """:func:`~llmgw_kernel.spend_history.make_spend_history` into an empty or new ``data_dir``; when
    ``data_dir`` already holds a spend history of the same ``start`` and ``days`` (the notebook run
    again with the same ``LLMGW_DATA_DIR``), that history read back from its log. Any other log
    there is a :class:`Stop`: a history written over it would count both."""
    from ..spend_history import POLICY_FILE, SpendHistoryReport, make_spend_history
    from ..traffic_profile import PROFILES

    root = Path(data_dir)
    if not holds_log(root):
        return make_spend_history(root, days=days, start=start, seed=seed)
    t0 = time.perf_counter()
    first = datetime.combine(date.fromisoformat(start), datetime.min.time(), UTC)
    end = first + timedelta(days=days)
    con = open_log(root)
    try:
        rows = con.execute(
            "SELECT team, count(*), sum(cost_usd), min(ts), max(ts) FROM requests GROUP BY team"
        ).fetchall()
    finally:
        con.close()
    spans = [(lo if lo.tzinfo else lo.replace(tzinfo=UTC), hi if hi.tzinfo else hi.replace(tzinfo=UTC))
             for *_, lo, hi in rows]  # fmt: skip
    if not (root / POLICY_FILE).exists() or not all(first <= lo and hi < end for lo, hi in spans):
        raise Stop(
            f"{root} already holds a request log that is not a spend history of {days} days from {start}: "
            "set LLMGW_DATA_DIR to an empty or new directory (or unset it for a temporary one)."
        )
    order = [t.name for t in PROFILES["demo"].teams]
    found: dict[str, dict[str, float]] = {
        team: {"requests": int(n), "cost_usd": round(float(usd or 0.0), 6)} for team, n, usd, *_ in rows
    }
    teams = {t: found[t] for t in sorted(found, key=lambda t: (order.index(t) if t in order else len(order), t))}
    return SpendHistoryReport(
        data_dir=root, policy=root / POLICY_FILE, start=first, end=end, rows=sum(int(n) for _, n, *_ in rows),
        cost_usd=round(sum(t["cost_usd"] for t in teams.values()), 6), teams=teams,
        elapsed_s=round(time.perf_counter() - t0, 3),
    )  # fmt: skip
