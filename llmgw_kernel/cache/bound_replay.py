"""Replay of a false-hit bound starts from the live gateway's verified evidence
(docs/cache.md#using-it, "Replay").

A candidate bound (another ``max_false_hit_rate``, or a bound on a route that had none)
learns its thresholds from the outcomes the live gateway journaled
(``<data-dir>/cache-outcomes.jsonl``, :mod:`.outcomes`): each is learned as the replay passes
the time it became known (``Caches.catch_up``: an outcome known at ``t`` informs only
requests that arrived after ``t`` — no look-ahead), so at every request the candidate decides
with the evidence the live gateway had then. Replaying the version that served a row applies
the threshold it logged, and of the outcomes only the entry floors its lookup saw (below).

Replicas that share a data directory (and its log) each journal their own outcomes
(``replicas/<id>/cache-outcomes.jsonl``, :func:`~.outcomes.journal_paths`): a replay folds every
replica's journal, and the directory's own, as one stream in the order the outcomes became known
(the candidate learns from all the evidence the replicas gathered, as one gateway would).

A journal is bounded (:mod:`.outcomes`): the outcomes known before its last compaction
(``through``) are folded into per-region totals, learned as the replay passes ``through``. A
window whose requests all arrive after the latest ``through`` of the journals replays exactly as
with the whole journals; requests that arrived by then are decided without (some of) the folded
evidence (less than the live gateways had), and the replay's summary says so
(:func:`journal_warnings`).

Replaying the live policy, a row applies its logged threshold and the entry floors of the
outcomes known before its logged lookup (``Caches.floors_known_by``), as the live lookup did.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outcomes import folded_through, journal_paths, load_outcomes

if TYPE_CHECKING:
    from ..policy.model import Policy
    from .core import Caches


def uses_bound(policy: Policy) -> bool:
    """Whether any route of ``policy`` caches semantically under ``max_false_hit_rate``."""
    for route in policy.routes:
        s = policy.cache_for(route)
        if s is not None and s.semantic is not None and s.semantic.max_false_hit_rate is not None:
            return True
    return False


def journal_dir(window: Any) -> Path | None:
    """The data directory a replay window was read from (None: a window given as columns, or
    read from a connection that :func:`~llmgw_kernel.log.open_log` did not open)."""
    from ..log.reader import data_dir_of

    con = getattr(getattr(window, "_log", None), "con", None)  # replay.window.Window's log query
    return data_dir_of(con) if con is not None else None


def window_end(window: Any) -> float | None:
    """The last arrival or logged lookup of a replay window (epoch seconds; None: unknown or
    empty). An outcome known from then on informs no request of the window: it is not loaded.
    (A candidate learns only the outcomes known before each arrival; the live policy's replay
    also floors entries with those known before each logged lookup, which may follow the last
    arrival.)"""
    ts = _arrivals(window)
    if ts is None or not len(ts):
        return None
    end = float(ts.max())
    column = getattr(window, "arrow", None)
    if column is not None and "cache_lookup_ts" in window:
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        looked = pc.max(column("cache_lookup_ts")).as_py()
        end = max(end, float(looked)) if looked is not None else end
    return end


def _arrivals(window: Any) -> Any:
    epoch = getattr(window, "epoch", None)
    return epoch("ts") if epoch is not None else None


def journal_warnings(policy: Policy, window: Any, data_dir: Path | None = None) -> list[str]:
    """What a compacted journal can no longer replay for this window: the requests that arrived
    while the outcomes now folded were being learned (none: the window replays exactly)."""
    if not uses_bound(policy):
        return []
    root = data_dir if data_dir is not None else journal_dir(window)
    folded = [t for p in journal_paths(Path(root)) if (t := folded_through(p)) is not None] if root is not None else []
    through = max(folded, default=None)  # a request by the latest misses that journal's folded evidence
    ts = _arrivals(window)
    if through is None or ts is None:
        return []
    early = int((ts <= through).sum())
    if not early:
        return []
    when = dt.datetime.fromtimestamp(through, dt.UTC).isoformat(timespec="seconds")
    return [
        f"cache: the outcome journal is compacted through {when}: {early} request(s) of this window arrived "
        "by then and were decided under max_false_hit_rate without the evidence folded at that time "
        "(fewer hits than the live gateway could make); requests after it replay exactly"
    ]


def attach_journal(caches: Caches, policy: Policy, window: Any, data_dir: Path | None = None) -> int:
    """Attach the journaled outcomes to a replay's decision core when ``policy`` uses the bound
    (``data_dir``: where the journals are; default the window's data directory): those of the
    directory and of every replica in it, up to the window's last arrival. Returns how many
    were attached (``Caches.attach_outcomes`` orders them by the time each became known; ties
    keep the directory's, then the replicas' by id)."""
    if not uses_bound(policy):
        return 0
    root = data_dir if data_dir is not None else journal_dir(window)
    if root is None:
        return 0
    until = window_end(window)
    outcomes = [o for path in journal_paths(Path(root)) for o in load_outcomes(path, until=until)]
    caches.attach_outcomes(outcomes)
    return len(outcomes)
