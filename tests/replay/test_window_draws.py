"""Routing draws a window's weighted rows from one draw of all its ids when most rows are drawn
(``routing_stage.window_draws``): the plans and reasons equal ``plan_route`` row by row — each row
by its own ``route_draw``, a check of a semantic hit by its hit's id — and equal the per-route
path's, for a window given as columns (one array) and for ids in many chunks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.decisions.routing import draws, plan_route
from llmgw_kernel.log.schema import ROUTE_DRAW, ROUTE_DRAW_V1
from llmgw_kernel.replay import routing_stage
from llmgw_kernel.replay.window import as_window

POLICY = {
    "providers": {"a": {"kind": "demo"}, "b": {"kind": "demo"}, "c": {"kind": "demo"}},
    "routes": {
        "split": {
            "targets": [
                {"provider": "a", "model": "x", "weight": 50},
                {"provider": "b", "model": "x", "weight": 30},
                {"provider": "c", "model": "x", "weight": 20},
            ]
        },  # fmt: skip
        "two": {
            "targets": [{"provider": "b", "model": "x", "weight": 1}, {"provider": "c", "model": "x", "weight": 3}]
        },
        "one": {"targets": [{"provider": "a", "model": "x"}]},
    },
}


def _columns(n: int = 600) -> dict[str, list[Any]]:
    routes = ["split", "two", "split", "one", "nope"]
    ids = [f"req_{i:05d}-{'é' if i % 11 == 0 else 'x'}" for i in range(n)]
    check = [i % 13 == 5 for i in range(n)]
    return {
        "request_id": ids,
        "route": [routes[i % 5] for i in range(n)],
        "plan": [None if i % 29 == 0 else "a/x" for i in range(n)],
        "error_type": [None] * n,
        "origin": [None] * n,
        "endpoint": ["cache.check" if c else "/v1/chat/completions" for c in check],
        "cache_source": [ids[i - 3] if c and i % 2 else None for i, c in enumerate(check)],
        "route_draw": [ROUTE_DRAW_V1 if i % 4 == 1 else ROUTE_DRAW for i in range(n)],
    }


def _reference(policy: Any, cols: dict[str, list[Any]]) -> list[tuple[tuple[str, ...], str] | None]:
    out: list[tuple[tuple[str, ...], str] | None] = []
    for i, route in enumerate(cols["route"]):
        if cols["plan"][i] is None:
            out.append(None)  # not routed live
        elif route not in policy.routes:
            out.append(((), "unknown model (no such route)"))
        else:
            key = cols["cache_source"][i] if cols["endpoint"][i] == "cache.check" and cols["cache_source"][i] else None
            p = plan_route(policy, route, key or cols["request_id"][i], None, cols["route_draw"][i])
            out.append((p.targets, p.reason))
    return out


def _decided(policy: Any, window: Any) -> list[tuple[tuple[str, ...], str] | None]:
    d = routing_stage.decide_routes(policy, window)
    return [None if c < 0 else (d.plans[c], d.reasons[r]) for c, r in zip(d.plan_codes, d.reason_codes, strict=True)]


@pytest.mark.parametrize("chunks", [1, 5])
def test_window_draws_equal_plan_route_and_the_per_route_path(chunks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(POLICY)
    cols = _columns()
    want = _reference(policy, cols)
    window = as_window(cols)
    if chunks > 1:  # the window's ids in several chunks, as a window read through the segment cache holds them
        ids = window._table.column("request_id").combine_chunks()
        bounds = np.linspace(0, len(ids), chunks + 1).astype(int)
        pieces = [ids.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        at = window._table.column_names.index("request_id")
        window._table = window._table.set_column(at, "request_id", pa.chunked_array(pieces))
    called: list[int] = []
    real = routing_stage.window_draws

    def counted(*args: Any) -> Any:
        called.append(1)
        return real(*args)

    monkeypatch.setattr(routing_stage, "window_draws", counted)
    assert _decided(policy, window) == want
    assert called, "most rows are drawn: the window's ids are drawn at once"
    monkeypatch.setattr(routing_stage, "window_draws", lambda *a: pytest.fail("drawn per route"))
    few = as_window({k: v[:40] if k != "route" else ["one"] * 30 + v[30:40] for k, v in cols.items()})
    assert _decided(policy, few) == _reference(policy, {k: v[:40] if k != "route" else ["one"] * 30 + v[30:40]
                                                        for k, v in cols.items()})  # fmt: skip


def test_draws_of_a_chunked_column_equal_the_whole_arrays() -> None:
    keys = [f"k{i}" * (1 + i % 3) for i in range(1000)]
    whole = draws("v", pa.array(keys))
    chunked = pa.chunked_array(
        [pa.array(keys[:1]), pa.array(keys[1:700]), pa.array([], pa.string()), pa.array(keys[700:])]
    )
    assert draws("v", chunked).tolist() == whole.tolist()
    assert draws("v", pa.chunked_array([], pa.string())).tolist() == []
