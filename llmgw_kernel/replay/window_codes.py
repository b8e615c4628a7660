"""The window's coded columns, assembled from the replay cache's entries
(:mod:`.segment_cache`): each segment's codes renumbered into one dictionary for the window, in
the window's order, and numbered in order of first appearance as ``dictionary_encode`` numbers
them (what :mod:`.window` holds for a column worth coding) — copied as they are when the
segments' dictionaries already are the window's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from .segment_cache import Piece

Runs = tuple[np.ndarray, np.ndarray]  # (first row, row past the last) of each run of moved rows


def moved_runs(idx: np.ndarray, moved: np.ndarray, most: int) -> Runs | None:
    """The runs of rows an order moves (``moved``: rows where ``idx`` is not the row itself) when
    each run is a permutation of itself (rows sharing a time stamp) and there are at most ``most``
    of them, else None."""
    breaks = np.flatnonzero(np.diff(moved) > 1) + 1
    starts = moved[np.r_[0, breaks]] if len(moved) else moved
    stops = moved[np.r_[breaks - 1, len(moved) - 1]] + 1 if len(moved) else moved
    if len(starts) > most:
        return None
    for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
        inside = idx[lo:hi]
        if inside.min() < lo or inside.max() >= hi:
            return None
    return starts, stops


def _first_seen_before(g: np.ndarray, runs: Runs) -> bool:
    """Every code in each run appeared before the run in ``g`` (scan order, codes numbered in order
    of first appearance: the codes met before row ``lo`` are 0 .. max(g[:lo])) — then moving rows
    inside the runs keeps the order of first appearance."""
    starts, stops = runs
    if not len(starts):
        return True
    if starts[0] == 0:
        return False
    seen = np.maximum.accumulate(np.maximum.reduceat(g, np.r_[0, starts]))  # seen[k]: max(g[:starts[k]])
    return all(
        g[lo:hi].max() <= seen[k] for k, (lo, hi) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True))
    )


def coded_column(
    pieces: list[Piece], idx: np.ndarray | None, moved: np.ndarray | None = None, runs: Runs | None = None
) -> tuple[pa.Array, tuple[np.ndarray, list[Any]] | None]:
    """One column coded in every segment, in window order (``idx``: the scan row of each window
    row; ``moved``: the rows where it is not the row itself; ``runs``: theirs, :func:`moved_runs`), as
    the window holds it: a dictionary column and its codes when its first rows' values are few
    (:func:`.window._worth_coding`'s rule), else plain."""
    from .window import CODED_MAX_SHARE, CODED_SAMPLE_ROWS

    g, values, typ = _unified(pieces)
    # the dictionary's order is already that of first appearance when the window reads every row
    # of its segments (each segment's values in order, new ones numbered as met) in scan order, or
    # in an order that moves rows only inside runs holding no value's first appearance
    every = all(p.whole for p in pieces)
    kept = every and (idx is None or (runs is not None and _first_seen_before(g, runs)))
    if idx is not None:  # ``g`` is ours: only the rows the order moves are rewritten
        if moved is None:
            moved = np.flatnonzero(idx != np.arange(len(idx), dtype=idx.dtype))
        g[moved] = g[idx[moved]]
    sample = g[:CODED_SAMPLE_ROWS]
    sample = sample[sample >= 0]
    distinct = int(np.count_nonzero(np.bincount(sample, minlength=len(values)))) if len(sample) else 0
    if kept:
        codes, vals = g, values
    else:
        codes, vals = _first_appearance(g, values, every=every)
    null = codes < 0
    indices = pa.array(codes, mask=null) if null.any() else pa.array(codes)
    col = pa.DictionaryArray.from_arrays(indices, dictionary_values(vals, typ), safe=False)
    if distinct <= CODED_MAX_SHARE * max(len(sample), 1):
        return col, (codes, vals)
    return col.dictionary_decode(), None


def _unified(pieces: list[Piece]) -> tuple[np.ndarray, list[Any], pa.DataType]:
    """The pieces of one coded column as codes into one dictionary (in scan order): (codes, values, type)."""
    gid: dict[Any, int] = {}
    out = np.empty(sum(len(p.codes) for p in pieces if p.codes is not None), np.int32)
    at = 0
    typ = None
    for p in pieces:
        assert p.codes is not None
        typ = typ or p.type
        lut = np.fromiter((gid.setdefault(v, len(gid)) for v in p.values), np.int32, len(p.values))
        if np.array_equal(lut, np.arange(len(lut), dtype=np.int32)):  # the segment's codes are the window's
            out[at : at + len(p.codes)] = p.codes
        else:  # -1 (NULL) indexes the appended -1
            np.take(np.append(lut, np.int32(-1)), p.codes, out=out[at : at + len(p.codes)])
        at += len(p.codes)
    return out, list(gid), typ


def _first_appearance(g: np.ndarray, values: list[Any], every: bool = False) -> tuple[np.ndarray, list[Any]]:
    """Codes renumbered in order of first appearance (as ``dictionary_encode`` numbers them). The
    values present are few and nearly all appear early: the order is read from the shortest
    prefix of ``g`` that holds every value present (a prefix's first appearances are the whole's)."""
    import pandas as pd

    # ``every``: each value of the dictionary is present (every row of each segment is in ``g``)
    present = len(values) if every else int(np.count_nonzero(np.bincount(g + 1, minlength=len(values) + 1)[1:]))
    m = 4096
    while True:
        head = g[:m]
        seen = pd.unique(head[head >= 0])
        if len(seen) == present or m >= len(g):
            break
        m *= 8
    if len(seen) == len(values) and np.array_equal(seen, np.arange(len(values))):
        return g, values  # already numbered so (a permutation that moves only a few tied rows)
    remap = np.full(len(values) + 1, -1, np.int32)
    remap[seen] = np.arange(len(seen), dtype=np.int32)
    return remap[g], [values[i] for i in seen.tolist()]


def dictionary_values(values: list[Any], typ: pa.DataType) -> pa.Array:
    """A dictionary's values as an Arrow array of ``typ`` (a list type: each value a plan string)."""
    from .window import split_plan

    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.array([split_plan(v) for v in values], typ)
    return pa.array(values, typ)
