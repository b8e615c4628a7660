"""The window's embedding vectors, read when first asked for, in bounded chunks (a float32
matrix and the window row of each of its rows); and how a batch's rows are matched to the
window's rows by (ts, request_id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

if TYPE_CHECKING:
    import duckdb


class EmbeddingSource:
    """Where the window's vectors are read from when first asked for: the same predicate over
    the same log, matched to the window's rows by (ts, request_id) — rows logged since the
    window was loaded are ignored."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None, where: str = "", params: Sequence[Any] = ()) -> None:
        self.con, self.where, self.params = con, where, list(params)  # con None: the log has no such column

    def read(self, ts_us: np.ndarray, rids: pa.Array, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(float32 matrix, the window row of each matrix row), rows in window order."""
        if self.con is None:
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        cond = (self.where + " AND" if self.where else " WHERE") + " embedding IS NOT NULL"
        count = int(self.con.execute(f"SELECT count(*) FROM requests{cond}", self.params).fetchall()[0][0])
        sql = f"SELECT epoch_us(ts) AS ts_us, request_id, embedding FROM requests{cond}"
        reader = self.con.sql(sql, params=self.params or None).fetch_record_batch(chunk_rows)
        matrix: np.ndarray | None = None
        rows = np.empty(count, np.int64)
        m = 0
        for batch in reader:
            pos = positions(ts_us, rids, batch.column(0).to_numpy(), batch.column(1))
            keep = pos >= 0
            if not keep.any():  # rows logged since the window was read
                continue
            vectors = vector_matrix(batch.column(2).filter(pa.array(keep)))
            if matrix is None:
                matrix = np.empty((count, vectors.shape[1]), np.float32)
            if vectors.shape[1] != matrix.shape[1]:
                raise ValueError(f"embeddings of {vectors.shape[1]} and {matrix.shape[1]} dimensions in one window")
            k = len(vectors)
            if m + k > len(matrix):  # rows appeared between the count and the scan
                matrix = np.concatenate([matrix, np.empty((m + k - len(matrix), matrix.shape[1]), np.float32)])
                rows = np.concatenate([rows, np.empty(m + k - len(rows), np.int64)])
            matrix[m : m + k] = vectors
            rows[m : m + k] = pos[keep]
            m += k
        if matrix is None:
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        matrix, rows = matrix[:m], rows[:m]
        if m and np.any(np.diff(rows) < 0):  # the scan is in segment order, nearly always time order already
            order = np.argsort(rows, kind="stable")
            matrix, rows = matrix[order], rows[order]
        return matrix, rows


def positions(ts_us: np.ndarray, rids: pa.Array, b_ts: np.ndarray, b_rids: pa.Array) -> np.ndarray:
    """The window row of each (ts, request_id) of a batch; -1 where the window has no such row."""
    pos = np.searchsorted(ts_us, b_ts, side="left")
    inside = pos < len(ts_us)
    out = np.full(len(b_ts), -1, np.int64)
    idx = np.flatnonzero(inside)
    same = pc.equal(rids.take(pa.array(pos[idx])), b_rids.take(pa.array(idx))).to_numpy(zero_copy_only=False)
    out[idx[same]] = pos[idx[same]]
    for j in idx[~same]:  # several rows share the time stamp: find the request id among them
        p, want = int(pos[j]), b_rids[j].as_py()
        while p < len(ts_us) and ts_us[p] == b_ts[j]:
            if rids[p].as_py() == want:
                out[j] = p
                break
            p += 1
    return out


def vector_matrix(column: pa.Array) -> np.ndarray:
    """A FLOAT[] column without NULLs as a float32 matrix (every vector the same length)."""
    if len(column) == 0:
        return np.empty((0, 0), np.float32)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if np.any(lengths != lengths[0]):
        raise ValueError(f"embeddings of different lengths in one window: {sorted(set(lengths.tolist()))[:5]}")
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(column), int(lengths[0]))


__all__ = ["EmbeddingSource", "positions", "vector_matrix"]
