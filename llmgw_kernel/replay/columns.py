"""Logged values as replay stages read them (DuckDB hands back JSON as text, times as datetimes).

>>> json_value('{"team": "search"}'), json_value({"a": 1}), json_value("not json")
({'team': 'search'}, {'a': 1}, None)
>>> epoch(12.5)
12.5
"""

from __future__ import annotations

from typing import Any

import orjson


def json_value(value: Any) -> Any:
    """A JSON column's value parsed (None when it is not JSON); already-parsed values as they are."""
    if isinstance(value, (str, bytes)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def epoch(ts: Any) -> float:
    """A logged time (datetime or epoch seconds) as epoch seconds."""
    return ts.timestamp() if hasattr(ts, "timestamp") else float(ts)
