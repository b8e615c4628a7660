"""``routing_estimates.attempt_arrays`` — each target's attempt latencies (ok, failed, cut), in log
order, skipped attempts and those without a target left out — equals a row-by-row reading of the attempts, whether the column
is one array or many chunks, with or without skipped attempts (the path that filters nothing)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from llmgw_kernel.replay.routing_estimates import CUT_MARK, _attempt_arrays

ATTEMPT = pa.struct([("target", pa.string()), ("status", pa.int32()), ("latency_ms", pa.float64()),
                     ("error", pa.string())])  # fmt: skip


def _rows(skipped: bool, n: int = 400) -> list[list[dict[str, Any]] | None]:
    rng = np.random.default_rng(3)
    rows: list[list[dict[str, Any]] | None] = []
    for i in range(n):
        if i % 17 == 0:
            rows.append(None)
            continue
        row = []
        for _ in range(int(rng.integers(0, 4))):
            target = ["o/a", "o/b", "p/c", None][int(rng.integers(0, 4))]
            kind = int(rng.integers(0, 6))
            error = (None, None, None, "timeout", f"stream cut {CUT_MARK}", "skipped: breaker open")[kind]
            if error and error.startswith("skipped") and not skipped:
                error = "http 500"
            latency = None if kind == 1 else float(rng.integers(1, 900)) + 0.25
            row.append({"target": target, "status": 200, "latency_ms": latency, "error": error})
        rows.append(row)
    return rows


def _reference(rows: list[list[dict[str, Any]] | None]) -> dict[Any, dict[str, list[float]]]:
    out: dict[Any, dict[str, list[float]]] = {}
    for row in rows:
        for a in row or []:
            error = a["error"]
            if (error is not None and error.startswith("skipped")) or a["target"] is None:
                continue  # a skipped attempt is no attempt; one without a target is no target's
            s = out.setdefault(a["target"], {"ok": [], "failed": [], "cut": []})
            lat = a["latency_ms"] or 0.0
            s["ok" if error is None else "failed"].append(lat)
            if error is not None and CUT_MARK in error:
                s["cut"].append(lat)
    return out


@pytest.mark.parametrize("skipped", [False, True])
@pytest.mark.parametrize("chunks", [1, 7])
def test_attempt_arrays_equal_a_row_by_row_reading(skipped: bool, chunks: int) -> None:
    rows = _rows(skipped)
    typ = pa.list_(ATTEMPT)
    bounds = np.linspace(0, len(rows), chunks + 1).astype(int)
    col = pa.chunked_array([pa.array(rows[lo:hi], typ) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)], typ)
    got = _attempt_arrays(_Window(col))
    want = _reference(rows)
    assert list(got) == list(want)  # targets in order of first (kept) appearance
    for target, s in want.items():
        for kind in ("ok", "failed", "cut"):
            assert got[target][kind].tolist() == s[kind], (target, kind)


class _Window:
    """What ``_attempt_arrays`` reads of a window: its ``attempts`` column as Arrow (chunked)."""

    columns = ("attempts",)

    def __init__(self, col: pa.ChunkedArray) -> None:
        self.col = col

    def arrow(self, name: str) -> pa.ChunkedArray:
        assert name == "attempts"
        return self.col
