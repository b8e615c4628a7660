"""Field values as other systems export them, read strictly: a value that is present but not
what its field means is an error naming the field (the line is then reported and skipped); a
value that is absent is None. Nothing is guessed or filled in.

>>> epoch("2026-11-26T10:00:00Z"), epoch("2026-11-26 10:00:00.5"), epoch(1795687200), epoch(1795687200123)
(1795687200.0, 1795687200.5, 1795687200.0, 1795687200.123)
>>> epoch(1e300)
Traceback (most recent call last):
...
llmgw_kernel.importing.values.BadValue: time: 1e+300 is not a time between 1970-01-01 and 2100-01-01
>>> count(" 12 "), count(None), money("0.0021"), usd("0.0021"), usd(210, "cost", per_usd=100)
(12, None, 0.0021, 0.0021, 2.1)
>>> usd("1e10")
Traceback (most recent call last):
...
llmgw_kernel.importing.values.BadValue: cost_usd: '1e10' is more than a request can cost (at most USD 4.295e+09)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson

from ..log.schema import time_error
from ..providers.usage import MAX_TOKENS

# epoch values above this are milliseconds (year 33658 in seconds; 1970-04-26 in ms)
_MS_ABOVE = 1e12


class BadValue(ValueError):
    """A present value that is not what its field means."""


def absent(value: Any) -> bool:
    """None, an empty or blank string, or NaN (an empty CSV/Parquet cell)."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def epoch(value: Any, field: str = "time") -> float | None:
    """Epoch seconds from ISO 8601 text (no zone: UTC), a datetime, or epoch seconds/ms, within
    the times a log row holds (1970-01-01 .. 2100-01-01, :func:`llmgw_kernel.log.schema.time_error`):
    a time outside them is a BadValue, so its record is reported and skipped."""
    seconds = _epoch(value, field)
    if seconds is not None and time_error(seconds) is not None:
        raise BadValue(f"{field}: {value!r} is not a time between 1970-01-01 and 2100-01-01")
    return seconds


def _epoch(value: Any, field: str) -> float | None:
    if absent(value):
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        return round(v / 1000.0, 6) if v > _MS_ABOVE else v
    elif isinstance(value, str):
        text = value.strip()
        try:
            return _epoch(float(text), field)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
        except ValueError:
            raise BadValue(f"{field}: {value!r} is not a time") from None
    else:
        raise BadValue(f"{field}: {type(value).__name__} is not a time")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def count(value: Any, field: str = "count") -> int | None:
    """A whole number from 0 to ``MAX_TOKENS`` (2**31 - 1: tokens, an HTTP status, retries), the
    counts the gateway itself takes as real (:mod:`llmgw_kernel.providers.usage`): a larger one
    is no real request's, and the log could not hold it as logged."""
    if absent(value):
        return None
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0 or number != int(number):
            raise ValueError
        if number > MAX_TOKENS:
            raise ValueError
    except (ValueError, OverflowError):
        raise BadValue(f"{field}: {value!r} is not a count (a whole number from 0 to {MAX_TOKENS})") from None
    return int(number)


def money(value: Any, field: str = "cost") -> float | None:
    """A finite, non-negative amount."""
    if absent(value):
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise BadValue(f"{field}: {value!r} is not an amount") from None
    if not math.isfinite(amount) or amount < 0:
        raise BadValue(f"{field}: {value!r} is not an amount")
    return amount


def usd(value: Any, field: str = "cost_usd", per_usd: float = 1.0) -> float | None:
    """A cost in USD (``value`` counts ``per_usd`` units to the dollar: 100 for cents): an amount
    (:func:`money`) no more than :data:`~llmgw_kernel.decisions.cost.MAX_COST_USD`, the most a
    request can cost. A larger one is a unit slip, not a request: its record is reported and
    skipped, never logged as spend that would outweigh every budget."""
    from ..decisions.cost import MAX_COST_USD

    amount = money(value, field)
    if amount is None:
        return None
    if amount / per_usd > MAX_COST_USD:
        raise BadValue(f"{field}: {value!r} is more than a request can cost (at most USD {MAX_COST_USD:.4g})")
    return amount / per_usd


def text(value: Any) -> str | None:
    """A non-blank string (numbers read from CSV as text too)."""
    if absent(value):
        return None
    return value.strip() if isinstance(value, str) else str(value)


def json_object(value: Any, field: str) -> dict[str, Any] | None:
    """A JSON object given as an object or as JSON text (CSV exports); ``{}`` counts as absent."""
    if absent(value):
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise BadValue(f"{field}: not valid JSON") from None
    if not isinstance(value, dict):
        raise BadValue(f"{field}: expected a JSON object, got {type(value).__name__}")
    return value or None


def json_list(value: Any, field: str) -> list[Any] | None:
    """A JSON array given as an array or as JSON text (CSV exports); ``[]`` counts as absent;
    anything else present (an object, a number) is not a list: None."""
    if isinstance(value, str):
        if absent(value):
            return None
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise BadValue(f"{field}: not valid JSON") from None
    return value if isinstance(value, list) and value else None


def sub(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` when it is an object, else ``{}`` (a nested part the source left out)."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def flag(value: Any, field: str) -> bool | None:
    """true/false, 1/0, yes/no (any case)."""
    if absent(value):
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "1", "yes", "t", "y"):
        return True
    if word in ("false", "0", "no", "f", "n"):
        return False
    raise BadValue(f"{field}: {value!r} is not true or false")
