"""The filters every dashboard page shares: a time window and route / team / key / user /
model / provider, carried from page to page in the URL query.

One rule turns filters into SQL (:meth:`Filters.where`), so every page and every test asks
the log the same question::

    >>> f = Filters.from_query({"window": ["24 h"], "team": ["search"]})
    >>> f.to_query()
    'window=24+h&team=search'
    >>> f.where(1_800_000_000.0)[0]
    'ts >= to_timestamp($since) AND ts <= to_timestamp($until) AND team = $team'

A window is a preset (:data:`PRESETS`, relative to now) or an explicit range
(``since``/``until``, epoch seconds or ISO 8601 UTC), which is how a page is opened on an
older log (``/cost?since=2026-11-02T08:00&until=2026-11-02T13:00``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

#: preset label -> seconds back from now
PRESETS: dict[str, int] = {"15 min": 900, "1 h": 3600, "24 h": 86400, "7 d": 7 * 86400, "30 d": 30 * 86400}
DEFAULT_PRESET = "1 h"
#: filter name -> the log column it compares with equality
COLUMNS: dict[str, str] = {
    "route": "route", "team": "team", "key": "key_id", "user": "end_user", "model": "upstream_model",
    "provider": "provider",
}  # fmt: skip
#: chart bucket widths, the smallest giving at most MAX_BUCKETS buckets is used
BUCKETS_S: tuple[int, ...] = (60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
MAX_BUCKETS = 150
#: a window that ended this long ago has all its rows in the log (a row reaches it within a flush)
SETTLE_S = 120.0
#: the times a URL may name (epoch s): the widest preset back from either end is still a date
TIME_MIN, TIME_MAX = 0.0, datetime(9999, 1, 1, tzinfo=UTC).timestamp()
log = logging.getLogger("llmgw.dashboard")


@dataclass(frozen=True, slots=True)
class Filters:
    """What a page shows: the rows of one time window that match every filter set."""

    window: str = DEFAULT_PRESET
    since: float | None = None  # explicit range (epoch s); overrides the preset when set
    until: float | None = None
    route: str | None = None
    team: str | None = None
    key: str | None = None
    user: str | None = None
    model: str | None = None
    provider: str | None = None

    @classmethod
    def from_query(cls, args: Mapping[str, Any]) -> Filters:
        """From a URL query (``{name: [value, ...]}``, values str or bytes, as Tornado gives them)."""
        values: dict[str, Any] = {}
        for name in ("window", "since", "until", *COLUMNS):
            raw = args.get(name)
            if isinstance(raw, list | tuple):
                raw = raw[0] if raw else None
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "replace")
            if raw in (None, ""):
                continue
            values[name] = raw
        if values.get("window") not in PRESETS:
            values.pop("window", None)
        for name in ("since", "until"):
            if name in values:
                try:
                    values[name] = parse_time(values[name])
                except ValueError:  # this bound alone is dropped: the other filters of the link hold
                    log.info("dashboards: ignoring %s=%r in the URL query (not a time)", name, values.pop(name))
        return cls(**values)

    def to_query(self) -> str:
        """The URL query that reproduces these filters (defaults left out)."""
        pairs = [(f.name, getattr(self, f.name)) for f in fields(self)]
        out = []
        unused = self.since is not None  # the preset only sets the start (back from until, or now)
        for name, value in pairs:
            if value is None or (name == "window" and (value == DEFAULT_PRESET or unused)):
                continue
            out.append((name, _iso(value) if name in ("since", "until") else value))
        return urlencode(out)

    def with_(self, **changes: Any) -> Filters:
        """A copy with ``changes`` (choosing a preset drops an explicit range)."""
        if "window" in changes:
            changes.setdefault("since", None)
            changes.setdefault("until", None)
        return replace(self, **changes)

    def bounds(self, now: float) -> tuple[float, float]:
        """(since, until) in epoch seconds."""
        until = self.until if self.until is not None else now
        since = self.since if self.since is not None else until - PRESETS[self.window]
        return since, until

    def label(self, now: float) -> str:
        if self.since is None and self.until is None:
            return f"last {self.window}"
        since, until = self.bounds(now)
        return f"{_iso(since)} .. {_iso(until)} UTC"

    def where(self, now: float, alias: str = "") -> tuple[str, dict[str, Any]]:
        """(SQL condition over the ``requests`` view, its parameters)."""
        since, until = self.bounds(now)
        prefix = f"{alias}." if alias else ""
        parts = [f"{prefix}ts >= to_timestamp($since)", f"{prefix}ts <= to_timestamp($until)"]
        params: dict[str, Any] = {"since": since, "until": until}
        for name, column in COLUMNS.items():
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{prefix}{column} = ${name}")
                params[name] = value
        return " AND ".join(parts), params

    def settled(self, now: float, settle_s: float = SETTLE_S) -> bool:
        """Whether the window ended more than ``settle_s`` ago: the log only appends, so no
        answer over it can change any more (a preset window never settles)."""
        return self.until is not None and self.until <= now - settle_s

    def bucket_s(self, now: float) -> int:
        """The chart bucket width for this window."""
        since, until = self.bounds(now)
        span = max(until - since, 1.0)
        # past the widths: whole days, still at most MAX_BUCKETS (a window from 1970 was 20,794
        # daily buckets — four 4 MB SVGs on the overview, a page not drawn in 2 minutes — and one
        # to 9998, 2.9 million)
        days = math.ceil(span / MAX_BUCKETS / 86400)
        return next((b for b in BUCKETS_S if span / b <= MAX_BUCKETS), days * 86400)

    def buckets(self, now: float) -> tuple[float, int, int]:
        """(first bucket start, bucket width, number of buckets) covering the window, aligned."""
        since, until = self.bounds(now)
        width = self.bucket_s(now)
        start = math.floor(since / width) * width
        return start, width, max(1, math.ceil((until - start) / width))

    def key_tuple(self, now: float) -> tuple[Any, ...]:
        """A cache key: the same filters at the same resolved bounds."""
        return (*self.bounds(now), *(getattr(self, n) for n in COLUMNS))


def parse_time(text: str | float) -> float:
    """Epoch seconds from a number or an ISO 8601 time (naive = UTC); ValueError for anything
    else, and for a time outside 1970 .. 9998 (``inf``, ``nan``, ``-1e20``: a window there
    could not be shown as dates, and the log holds no row there).

    >>> parse_time("2026-11-02T08:00"), parse_time("1800000000")
    (1793606400.0, 1800000000.0)
    >>> parse_time("inf")
    Traceback (most recent call last):
    ...
    ValueError: 'inf' is not a time between 1970 and 9998
    """
    try:
        epoch = float(text)
    except ValueError:
        when = datetime.fromisoformat(str(text))
        epoch = (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp()
    if not TIME_MIN <= epoch <= TIME_MAX:  # also false for nan
        raise ValueError(f"{text!r} is not a time between 1970 and 9998")
    return epoch


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")


__all__ = ["COLUMNS", "DEFAULT_PRESET", "PRESETS", "SETTLE_S", "Filters", "parse_time"]
