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


def strings(values: list[Any], codes: Any) -> Any:
    """A string column built from its distinct ``values`` and one code per row (-1: NULL), as
    an Arrow array (pandas reads it as its ``str`` dtype, as it reads a list of str | None,
    without a Python object per row); all NULL: an object array of None (how pandas reads a
    list of None)."""
    import numpy as np
    import pyarrow as pa  # type: ignore[import-untyped]

    codes = np.asarray(codes, np.int32)
    if not values or not np.any(codes >= 0):
        return np.full(len(codes), None, object)
    indices = pa.array(codes, mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string())).dictionary_decode()


def as_objects(column: Any) -> Any:
    """An Arrow column as an object array of Python values (None for NULL); others as they are."""
    if hasattr(column, "to_pylist"):
        import numpy as np

        out = np.empty(len(column), object)
        out[:] = column.to_pylist()
        return out
    return column


def to_pandas(column: Any) -> Any:
    """A column as ``pd.DataFrame`` takes it: Arrow arrays converted (pandas ``str`` for strings)."""
    return column.to_pandas() if hasattr(column, "to_pandas") else column
