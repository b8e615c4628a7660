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


class Coded:
    """A string column held as its distinct ``values`` and one int32 code per row (-1: NULL),
    turned into strings only when read (:meth:`to_pandas` when the replay's frame is built,
    after the window's memory is freed). Reads as a sequence of str | None too."""

    __slots__ = ("codes", "values")

    def __init__(self, values: list[Any], codes: Any) -> None:
        import numpy as np

        self.values, self.codes = values, np.asarray(codes, np.int32)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> Any:
        c = int(self.codes[i])
        return self.values[c] if c >= 0 else None

    def __iter__(self) -> Any:
        return iter(self.to_pylist())

    def to_pylist(self) -> list[Any]:
        table = [*self.values, None]
        return [table[c] for c in self.codes.tolist()]

    def to_pandas(self) -> Any:
        """As pandas reads a list of str | None: its ``str`` dtype, built from Arrow without a
        Python object per row; all NULL: an object array of None."""
        import numpy as np
        import pyarrow as pa  # type: ignore[import-untyped]

        if not len(self.codes):
            return []  # as pandas reads an empty list
        if not self.values or not np.any(self.codes >= 0):
            return np.full(len(self.codes), None, object)
        indices = pa.array(self.codes, mask=self.codes < 0)
        decoded = pa.DictionaryArray.from_arrays(indices, pa.array(self.values, pa.string())).dictionary_decode()
        return decoded.to_pandas()


def strings(values: list[Any], codes: Any) -> Coded:
    """A string column from its distinct ``values`` and a code per row (see :class:`Coded`)."""
    return Coded(values, codes)


def numbers(values: Any, known: Any) -> Any:
    """A float column as the stages hold it: float64, NaN where ``known`` is False — what pandas
    reads a list of float | None as — and, when no value is known, an object array of None (as
    pandas reads a list of None). 8 bytes a row instead of a Python float each."""
    import numpy as np

    if not np.any(known):
        return np.full(len(values), None, object)
    out = np.asarray(values, np.float64)
    if np.array_equal(np.isnan(out), ~np.asarray(known, bool)):  # already NaN exactly where unknown: no copy
        return out
    return np.where(known, out, np.nan)


def known_floats(column: Any) -> tuple[Any, Any]:
    """(float64 values, known mask) of a float column held either way: float64 with NaN for
    unknown (:func:`numbers`), or an object array / list of float | None."""
    import numpy as np

    if isinstance(column, np.ndarray) and column.dtype != object:
        values = column.astype(np.float64, copy=False)
        return values, ~np.isnan(values)
    objs = np.asarray(column, object)
    known = objs != None  # noqa: E711
    values = np.full(len(objs), np.nan)
    values[known] = objs[known].astype(np.float64)
    return values, known


def optional_objects(column: Any) -> Any:
    """A float column (:func:`numbers`, or already objects) as an object array of float | None:
    Python floats only for the known values."""
    import numpy as np

    values, known = known_floats(column)
    out = np.full(len(values), None, object)
    out[known] = values[known].tolist() if known.any() else []
    return out


def as_objects(column: Any) -> Any:
    """A :class:`Coded` (or Arrow) column as an object array of Python values (None for NULL);
    others as they are."""
    if hasattr(column, "to_pylist"):
        import numpy as np

        out = np.empty(len(column), object)
        out[:] = column.to_pylist()
        return out
    return column


def grouped(codes: Any) -> tuple[Any, Any]:
    """The rows of each value of ``codes`` (small non-negative integers): ``(order, bounds)``,
    the rows with value ``v`` being ``order[bounds[v]:bounds[v + 1]]``, ascending — what
    ``np.flatnonzero(codes == v)`` gives, for every ``v`` in one stable sort (a radix sort
    when the values fit 16 bits) instead of one pass over the rows per value.

    >>> order, bounds = grouped([2, 0, 2, 1, 0])
    >>> [order[bounds[v] : bounds[v + 1]].tolist() for v in range(3)]
    [[1, 4], [3], [0, 2]]
    """
    import numpy as np

    codes = np.asarray(codes)
    top = int(codes.max()) if codes.size else -1
    narrow = codes.astype(np.int16 if top < 2**15 else np.int64, copy=False)
    order = np.argsort(narrow, kind="stable")
    bounds = np.zeros(top + 2, np.int64)
    np.cumsum(np.bincount(narrow, minlength=top + 1), out=bounds[1:])
    return order, bounds


def to_pandas(column: Any) -> Any:
    """A column as ``pd.DataFrame`` takes it: :class:`Coded` and Arrow columns converted (pandas
    ``str`` for strings); an object array as the list of its values (pandas infers a list's
    dtype — floats and None: float64 — but keeps an object array's)."""
    import numpy as np

    if hasattr(column, "to_pandas"):
        return column.to_pandas()
    if isinstance(column, np.ndarray) and column.dtype == object:
        from pandas.api.types import infer_dtype

        kind = infer_dtype(column, skipna=True)
        if kind == "string":  # str | None: coded by its few distinct values, built through Arrow
            import pandas as pd

            codes, values = pd.factorize(column)
            return Coded(values.tolist(), codes).to_pandas()
        # all None, or lists (plans): object either way — no list of a million values to infer from
        return column if kind in ("empty", "mixed") else column.tolist()
    return column
