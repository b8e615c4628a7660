"""The routing stage draws a weighted route's rows in batches of ``DRAW_BATCH`` ids, each batch's
ids taken chunk by chunk from the window's column: over a window of more than one batch, in many
chunks, with checks of semantic hits (drawn by their hit's id) and rows of both weighted draws,
every row's plan and reason equal the live ``plan_route`` of that row, and ``take_rows`` equals
Arrow's take for any rows."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.decisions.routing import DRAW_BATCH, UNKNOWN_ROUTE, plan_route
from llmgw_kernel.log.schema import ROUTE_DRAW, ROUTE_DRAW_V1
from llmgw_kernel.replay.routing_estimates import take_rows
from llmgw_kernel.replay.routing_stage import route_window
from llmgw_kernel.replay.window import Window

POLICY = {
    "providers": {"p": {"kind": "demo"}},
    "routes": {
        "w": {"targets": [{"provider": "p", "model": m, "weight": w} for m, w in (("a", 60), ("b", 30), ("c", 10))]},
        "v": {"targets": [{"provider": "p", "model": m, "weight": w} for m, w in (("c", 1), ("a", 1))]},
        "o": {"targets": [{"provider": "p", "model": "b"}, {"provider": "p", "model": "a"}]},
    },
}


def _chunked(values: list, chunk: int, type_: pa.DataType | None = None) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values[i : i + chunk], type_) for i in range(0, len(values), chunk)], type_)


def test_weighted_rows_drawn_in_batches_equal_plan_route() -> None:
    policy = load_policy(POLICY)
    rng = random.Random(5)
    n = DRAW_BATCH + 9_000  # two batches on the busiest route
    ids = [f"req_{rng.getrandbits(96):024x}" for _ in range(n)]
    routes = [rng.choice(["w", "w", "w", "v", "o", "gone"]) for _ in range(n)]
    checks = [i % 97 == 5 for i in range(n)]
    sources = [f"req_{rng.getrandbits(96):024x}" if c and i % 2 else None for i, c in enumerate(checks)]
    kinds = [ROUTE_DRAW_V1 if i % 13 == 0 else ROUTE_DRAW for i in range(n)]
    table = pa.table({
        "request_id": _chunked(ids, 7_001),
        "route": _chunked(routes, 5_003),
        "plan": _chunked([["p/a"] for _ in range(n)], 9_999, pa.list_(pa.string())),
        "error_type": _chunked([None] * n, 20_000, pa.string()),
        "origin": _chunked([None] * n, 20_000, pa.string()),
        "endpoint": _chunked(["cache.check" if c else "/v1/chat/completions" for c in checks], 3_000),
        "cache_source": _chunked(sources, 6_007, pa.string()),
        "route_draw": _chunked(kinds, 11_000, pa.int8()),
    })  # fmt: skip
    window = Window(None, table, None, table.column_names, False)
    decided, cols, differs = route_window(policy, window)
    plans, reasons = cols["replay_plan"], cols["replay_route_reason"]
    for i in range(n):
        if routes[i] == "gone":
            assert (list(plans[i]), reasons[i]) == ([], UNKNOWN_ROUTE), i
            continue
        key = (sources[i] or ids[i]) if checks[i] else ids[i]  # a check is drawn by its hit
        want = plan_route(policy, routes[i], key, route_draw=kinds[i])
        assert (tuple(plans[i]), reasons[i]) == (want.targets, want.reason), i
    assert differs.tolist() == [routes[i] == "gone" or list(plans[i]) != ["p/a"] for i in range(n)]


@pytest.mark.parametrize("chunk", [1, 7, 1_000, 10_000])
def test_take_rows_equals_arrow_take(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    values = [f"v{i}" if i % 11 else None for i in range(10_000)]
    column = _chunked(values, chunk, pa.string())
    for rows in (
        np.sort(rng.choice(10_000, 3_000, replace=False)),  # ascending
        np.sort(rng.integers(0, 10_000, 3_000)),  # repeats
        rng.integers(0, 10_000, 500),  # any order
        np.arange(0, dtype=np.int64),
        np.asarray([9_999]),
    ):
        want = column.take(pa.array(rows, pa.int64())).combine_chunks()
        got = take_rows(column, rows.astype(np.int64))
        assert isinstance(got, pa.Array) and got.equals(want)
        assert take_rows(column.combine_chunks(), rows.astype(np.int64)).equals(want)
    assert take_rows(pa.chunked_array([], pa.string()), np.arange(0, dtype=np.int64)).equals(pa.array([], pa.string()))
