"""Times and durations as people type them on the command line, parsed in one place.

>>> duration("36h")
datetime.timedelta(days=1, seconds=43200)
>>> from datetime import UTC, datetime
>>> now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
>>> instant("2026-12-04T10:00:00Z", now).isoformat()
'2026-12-04T10:00:00+00:00'
>>> instant("2026-12-04", now).isoformat()
'2026-12-04T00:00:00+00:00'
>>> instant("7d", now).isoformat()
'2026-11-28T12:00:00+00:00'
>>> instant("yesterday", now)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: 'yesterday': expected a UTC time such as 2026-11-26T10:00:00Z or 2026-11-26, or a duration back ...
>>> instant("99999999999d", now)
Traceback (most recent call last):
...
llmgw_kernel.timeparse.DurationOutOfRange: '99999999999d': a duration of at most 1000 years
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
MAX_YEARS = 1000
MAX_DURATION = timedelta(days=365.25 * MAX_YEARS)  # every duration reaches back from now: keep within datetime's range


class DurationOutOfRange(ValueError):
    """A well-formed duration too long to reach back from now (a datetime starts at year 1)."""


def duration(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``600s`` -> a positive duration of at most :data:`MAX_YEARS`
    years (so ``now - duration`` is a date; beyond it Python raises OverflowError); ValueError
    otherwise."""
    text = text.strip()
    try:
        if len(text) < 2 or text[-1] not in _UNITS:
            raise ValueError
        value = float(text[:-1])
    except ValueError:
        raise ValueError(f"{text!r}: a duration like 7d, 36h, 90m or 600s") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{text!r}: must be a positive, finite duration")
    try:
        span = timedelta(**{_UNITS[text[-1]]: value})
    except OverflowError:
        span = None
    if span is None or span > MAX_DURATION:
        raise DurationOutOfRange(f"{text!r}: a duration of at most {MAX_YEARS} years")
    return span


def instant(text: str, now: datetime | None = None) -> datetime:
    """An aware UTC time from ISO 8601 (a date, or a date and time; no zone means UTC) or from a
    duration back from ``now`` (``36h`` = 36 hours ago). One clear ValueError for anything else."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - duration(text)
        except DurationOutOfRange:
            raise
        except ValueError:
            raise ValueError(
                f"{text!r}: expected a UTC time such as 2026-11-26T10:00:00Z or 2026-11-26, "
                "or a duration back from now such as 90m, 36h or 7d"
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
