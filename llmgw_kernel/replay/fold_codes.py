"""The window's columns as integer codes, for the compiled fold's inputs (:mod:`.fold_inputs`,
:mod:`.fold_cache_inputs`): dense codes for Python values (:class:`Codes`), a window's columns in
bulk with its warm rows appended (:class:`Cols`), codes for combinations of columns
(:func:`factorize`) and a hash test that request ids are all distinct (:func:`all_distinct`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from .window import Window

#: the most rows (window and warm rows) the kernel folds: rows, request ids, key codes and groups are int32
ROWS_MAX = 2**31 - 2


class Codes(dict):  # type: ignore[type-arg]
    """Dense integer codes for hashable values, in first-seen order."""

    def code(self, value: Any) -> int:
        c = self.get(value)
        if c is None:
            c = self[value] = len(self)
        return c


class Cols:
    """The window's columns in bulk; ``both=True``: the warm rows' appended (the cache's rows)."""

    def __init__(self, window: Window, warm: Window | None) -> None:
        self.w, self.warm = window, warm
        self.n = len(window)
        self.m = self.n + (len(warm) if warm is not None else 0)
        self._memo: dict[tuple[str, str], Any] = {}
        self._num: dict[str, np.ndarray] = {}  # numeric columns read once, by name (the window's rows)
        self._ints: set[str] = set()  # of those, the integer ones (their values are ints)
        self._compacted: set[str] = set()  # columns released from the window: read from codes or numbers

    def compact(self, names: list[str]) -> None:
        """Read ``names`` once in the forms the inputs use — codes for a string column (the warm
        rows' too), float64 for a numeric or time column — and release their Arrow columns
        from the window: a column is then held as 4-8 bytes a row instead of its Arrow form
        beside them (a 1M-row fold's ~17 own columns: ~200 MB of Arrow). Other types stay."""
        done = []
        for name in names:
            typ = self.w.arrow(name).type
            if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ):
                self.codes(name)
                if self.warm is not None:
                    self.codes(name, both=True)
            elif pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_timestamp(typ):
                self._num[name] = self.w.numpy(name)
                if pa.types.is_integer(typ):
                    self._ints.add(name)
            else:
                continue
            done.append(name)
        self._compacted.update(done)
        self.w.release(done)

    def drop(self, names: Sequence[str]) -> None:
        """Free the numbers of columns ``names`` (read no more: a later :meth:`num` of one makes them
        again — a compacted column's by scanning it again)."""
        for name in names:
            self._num.pop(name, None)

    def drop_warm(self) -> None:
        """Free the codes and ids made with the warm rows appended (``both=True``: the cache's
        arrays are their last reader; a later read makes them again)."""
        for key in [k for k in self._memo if k[0] in ("codesTrue", "idsTrue")]:
            del self._memo[key]

    def arrow(self, name: str, both: bool = False) -> pa.ChunkedArray:
        if name in self._compacted:  # released: reading it as Arrow would scan the log again
            raise KeyError(f"{name!r} is compacted: read its codes or numbers")
        col = self.w.arrow(name)
        if not both or self.warm is None:
            return col
        other = self.warm.arrow(name)
        if other.type != col.type:  # e.g. a column all NULL in one of them
            other = other.cast(col.type) if pa.types.is_null(other.type) else other
            col = col.cast(other.type) if pa.types.is_null(col.type) else col
        return pa.chunked_array(col.chunks + other.chunks, col.type)

    def codes(self, name: str, both: bool = False) -> tuple[np.ndarray, list[Any]]:
        """(int32 code per row, -1 for NULL; the distinct values). The window's own codes, not a
        copy (indexing a table whose last entry stands for NULL reads them as they are)."""
        both = both and self.warm is not None
        key = ("codes" + str(both), name)
        if key not in self._memo:
            if not both or self.warm is None:
                self._memo[key] = self.w.codes(name)
            else:
                col = self.arrow(name, both)
                if pa.types.is_null(col.type):
                    self._memo[key] = (np.full(len(col), -1, np.int32), [])
                else:
                    enc = col.combine_chunks().dictionary_encode()
                    c = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
                    self._memo[key] = (c, enc.dictionary.to_pylist())
        return self._memo[key]  # type: ignore[no-any-return]

    def ids(self, name: str, both: bool = False) -> np.ndarray:
        """A string column of (nearly) distinct values as int32 codes (rows are int32:
        ``fold_inputs.ROWS_MAX``), -1 for NULL, without the values as Python strings (request
        ids: a million of them)."""
        both = both and self.warm is not None  # without warm rows, both are the window's
        key = ("ids" + str(both), name)
        if key not in self._memo:
            col = self.arrow(name, both)
            if all_distinct(col):  # the usual case: each row's own position is its code
                self._memo[key] = np.arange(len(col), dtype=np.int32)
            else:
                enc = col.combine_chunks().dictionary_encode()
                self._memo[key] = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
        return self._memo[key]  # type: ignore[no-any-return]

    def num(self, name: str, both: bool = False) -> np.ndarray:
        """A numeric or time column as float64 (epoch seconds for times), NaN for NULL."""
        own = self._num.get(name)
        if own is None:  # held here, not by the window: freed with the inputs' other numbers (drop)
            own = self._num[name] = self.w.numpy(name, keep=False)
        if not both or self.warm is None:
            return own
        return np.concatenate([own, self.warm.numpy(name)])

    def valid(self, name: str, both: bool = False) -> np.ndarray:
        return ~np.isnan(self.num(name, both))

    def eq(self, name: str, value: str, both: bool = False) -> np.ndarray:
        """True where a string column equals ``value``."""
        c, values = self.codes(name, both)
        table = np.array([v == value for v in values] + [False], np.bool_)
        return table[c]  # type: ignore[no-any-return]

    def values(self, name: str, rows: np.ndarray, both: bool = False) -> list[Any]:
        """The Python values of ``rows`` (a few: representatives of distinct values)."""
        if name not in self._compacted:
            return self.arrow(name, both).take(pa.array(rows, pa.int64())).to_pylist()  # type: ignore[no-any-return]
        if name in self._num:  # as the log holds them: int or float, None for NULL
            cast = int if name in self._ints else float
            return [None if v != v else cast(v) for v in self.num(name, both)[rows].tolist()]
        codes, values = self.codes(name, both)
        table = [*values, None]  # code -1 (NULL) reads the last entry
        return [table[k] for k in codes[rows].tolist()]


def all_distinct(col: pa.Array | pa.ChunkedArray) -> bool:
    """True when a string column's values are all different (and none is NULL), told by a 64-bit
    hash of each value's bytes (different hashes: different values; any equal hashes: False, and
    the caller codes the values exactly). Fixed-width values only (request ids); else False.
    Chunk by chunk (no concatenated copy), 8 bytes of every value at a time, and the hashes
    sorted in place: ~8 MB of temporaries per 1M rows beside the hashes (a padded copy of every
    value and a hash table were ~80 MB at the compiled fold's cache arrays)."""
    chunks = [c for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]) if len(c)]
    n = sum(len(c) for c in chunks)
    if not n or any(c.null_count for c in chunks) or not pa.types.is_string(col.type):
        return n == 0
    width = int(pc.binary_length(chunks[0][0]).as_py())
    hashes = []
    for c in chunks:
        lengths = pc.binary_length(c).to_numpy(zero_copy_only=False)
        if not width or (lengths != width).any():
            return False
        hashes.append(_hashed(c, width))
    h = hashes[0] if len(hashes) == 1 else np.concatenate(hashes)
    del hashes
    h.sort()
    return not bool((h[1:] == h[:-1]).any())


def _hashed(col: pa.Array, width: int) -> np.ndarray:
    """A 64-bit hash of each value of a string array whose values are all ``width`` bytes:
    multiply-xorshift per 8 bytes (wrapping; the last 8 padded with zeros)."""
    n = len(col)
    offsets = np.frombuffer(col.buffers()[1], np.int32, n + 1, col.offset * 4)
    data = np.frombuffer(col.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(n, width)
    h = np.zeros(n, np.uint64)
    word = np.zeros((n, 8), np.uint8)
    for j in range(0, width, 8):
        part = data[:, j : j + 8]
        word[:, : part.shape[1]] = part
        word[:, part.shape[1] :] = 0
        np.bitwise_xor(h, word.view(np.uint64).reshape(n), out=h)
        np.multiply(h, np.uint64(0x9E3779B97F4A7C15 + 2 * (j // 8)), out=h)
        h ^= h >> np.uint64(29)
    return h


def factorize(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a dense code per row for the combination of ``columns``' values, in order of first
    appearance; the first row of each code). Hashing (pandas), not sorting; floats are told
    apart by their bits, integer columns are codes from -1 up."""
    import pandas as pd

    n = len(columns[0]) if columns else 0
    key = np.zeros(n, np.int64)
    span = 1
    for col in columns:
        if col.dtype == np.float64:
            c, uniques = pd.factorize(col.view(np.int64))
            size = len(uniques) + 1
        else:
            c = col.astype(np.int64, copy=False) + 1
            size = int(c.max(initial=0)) + 1
        if span * size >= 2**62:  # keep the mixed-radix key in 64 bits
            key, uniques = pd.factorize(key)
            span = len(uniques)
        key = key * size + c
        span *= size
    code, _ = pd.factorize(key)
    code = code.astype(np.int64, copy=False)
    first = np.flatnonzero(~pd.Series(code).duplicated().to_numpy()) if n else np.zeros(0, np.int64)
    return code, first.astype(np.int64)


def ran_live(cols: Cols) -> np.ndarray:
    """The live proxy admitted the request (no limit applied, or admitted)."""
    code, values = cols.codes("admission")
    table = np.array([v == "ok" for v in values] + [True], np.bool_)  # NULL (code -1): admitted
    return table[code]  # type: ignore[no-any-return]
