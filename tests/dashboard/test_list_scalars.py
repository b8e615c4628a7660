"""The log's list scalars (``attempt_count``, ``first_planned``, ``first_attempt_failed``) and
the dashboards' figures read from them.

Every row the gateway writes holds the scalars beside the lists they stand for (checked on a
real ``llmgw serve``, whose rows go through the log worker process); rows of segments written
before the columns hold NULL there, and the routing and overview figures derive them from the
lists for those rows only. On a log mixing both, every figure equals DuckDB's answer from the
lists themselves. An attempts entry for a target skipped (its breaker open: error "skipped: ...")
is not an attempt: neither counted nor a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import duckdb
import openai
import pytest
from conftest import UPSTREAM_KEY, wait_for_rows

from llmgw_kernel.dashboard import OverviewStore
from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.queries import LogQueries
from llmgw_kernel.dashboard.routing_data import routing
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.schema import LIST_SCALARS_SQL
from llmgw_kernel.log.segments import list_segments, log_dir
from llmgw_kernel.log.writer import LogWriter

NOW = 1_800_000_000.0
SCALARS = tuple(LIST_SCALARS_SQL)
A, B = "openai/gpt-4o-mini", "anthropic/claude-haiku"
SKIP = "skipped: circuit open (60 s of cooldown left)"
# DuckDB over the lists: some attempt made (not skipped) failed; served by another target than the first planned
FAILED = "len(list_filter(attempts, lambda x: x.error IS NOT NULL AND NOT starts_with(x.error, 'skipped:'))) > 0"
FELL_BACK = "coalesce(target <> plan[1], false)"


def _attempt(target: str, error: str | None) -> dict:
    status = None if error == SKIP else 500 if error else 200
    return {"target": target, "status": status, "latency_ms": 0.0 if error == SKIP else 10.0, "error": error}


def _records(prefix: str, t0: float) -> list[RequestRecord]:
    """One of each shape: served first try, rescued by a fallback, rescued by a retry, failed,
    refused before routing (no plan, no attempts), planned but never tried, served by the second
    target because the first's breaker was open, every target skipped, and a retry's breaker
    opening before a fallback rescued it."""
    shapes = [
        ("ok", (A, B), [_attempt(A, None)], 0),
        ("ok", (A, B), [_attempt(A, "HTTP 500"), _attempt(B, None)], 0),
        ("ok", (B, A), [_attempt(B, "HTTP 500"), _attempt(B, None)], 1),
        ("upstream_error", (B,), [_attempt(B, "HTTP 503")], 0),
        ("limited", None, [], 0),
        ("no_target", (A,), [], 0),
        ("ok", (A, B), [_attempt(A, SKIP), _attempt(B, None)], 0),
        ("no_target", (A,), [_attempt(A, SKIP)], 0),
        ("ok", (A, B), [_attempt(A, "HTTP 500; retry 1 in 10 ms"), _attempt(A, SKIP), _attempt(B, None)], 1),
    ]
    out = []
    for i, (outcome, plan, attempts, retries) in enumerate(shapes * 3):
        rec = RequestRecord(f"{prefix}{i}", t0 + i, "chat.completions")
        route = "chat" if i // len(shapes) == 1 else "batch"
        rec.route, rec.outcome, rec.status, rec.latency_ms = route, outcome, 200, 5.0
        rec.plan, rec.attempts, rec.retries = plan, [dict(a) for a in attempts], retries
        rec.target = next((a["target"] for a in attempts if a["error"] is None), None)
        rec.request_raw = json.dumps({"model": rec.route, "messages": []}).encode()
        out.append(rec)
    return out


def _drop_scalars(path: Path) -> None:
    """Rewrite a segment as a release before the columns wrote it (its time kept)."""
    mtime = path.stat().st_mtime
    tmp = path.with_name(path.name + ".old")
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * EXCLUDE ({', '.join(SCALARS)}) FROM read_parquet('{path}')) TO '{tmp}' (FORMAT parquet)"
    )
    con.close()
    os.replace(tmp, path)
    os.utime(path, (mtime, mtime))


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    writer = LogWriter(data_dir)
    for rec in _records("old", NOW - 600):
        writer.append(rec)
    writer.close()
    old = [s.path for s in list_segments(log_dir(data_dir)) if s.lo > 0]
    assert old
    for path in old:
        _drop_scalars(path)
    writer = LogWriter(data_dir)  # the next release: new segments with the columns
    for rec in _records("new", NOW - 300):
        writer.append(rec)
    writer.close()
    c = Context(data_dir, queries=LogQueries(data_dir, clock=lambda: NOW))
    yield c
    c.close()


def _sql(ctx, sql: str) -> list[tuple]:
    return ctx.queries.answer(("probe", sql), lambda con, now: con.execute(sql).fetchall())


def test_new_rows_hold_the_scalars_of_their_lists_and_old_rows_null(ctx):
    derived = ", ".join(LIST_SCALARS_SQL.values())
    rows = _sql(ctx, f"SELECT request_id, {', '.join(SCALARS)}, {derived} FROM requests ORDER BY request_id")
    assert len(rows) == 2 * 3 * 9
    for rid, *values in rows:
        stored, from_lists = values[:3], values[3:]
        assert stored == ([None] * 3 if rid.startswith("old") else from_lists), rid
    assert {r[1] for r in rows if r[0].startswith("new")} == {0, 1, 2}  # every shape is there
    made = "list_filter(attempts, lambda x: NOT coalesce(starts_with(x.error, 'skipped:'), false))"
    want = _sql(ctx, f"""SELECT request_id, CAST(coalesce(len({made}), 0) AS SMALLINT), plan[1], coalesce({made}[1].error IS NOT NULL, false)
                         FROM requests ORDER BY request_id""")  # fmt: skip
    assert [(r[0], *r[4:]) for r in rows] == want  # the attempts made, skips passed over
    # the first made failed: a fallback, a retry, a failure, a retry whose breaker opened
    assert sum(1 for r in want if r[3]) == 2 * 3 * 4


def test_routing_figures_equal_the_lists_on_a_mixed_log(ctx):
    data = routing(ctx, Filters(window="1 h"))
    want = _sql(ctx, f"""
        SELECT route, count(*), count(*) FILTER (WHERE outcome <> 'ok'),
               count(*) FILTER (WHERE {FAILED}), count(*) FILTER (WHERE {FAILED} AND outcome = 'ok'),
               count(*) FILTER (WHERE {FELL_BACK})
        FROM requests WHERE len(plan) > 0 OR target IS NOT NULL GROUP BY 1 ORDER BY 1""")  # fmt: skip
    got = data.routes.sort_values("route")[["route", "requests", "errors", "upstream_failed", "rescued", "fell_back"]]
    assert [tuple(r) for r in got.itertuples(index=False)] == want
    assert all(r[3] > 0 and r[4] > 0 and r[5] > 0 for r in want)  # figures that can differ
    shares = _sql(ctx, "SELECT route, plan[1], count(*) FROM requests WHERE len(plan) > 0 GROUP BY ALL ORDER BY ALL")
    got_shares = data.shares[data.shares["planned_first"] > 0].sort_values(["route", "target"])
    assert [tuple(r) for r in got_shares[["route", "target", "planned_first"]].itertuples(index=False)] == shares


def test_overview_figures_equal_the_lists_on_a_mixed_log(ctx):
    h = OverviewStore(ctx.data_dir, queries=ctx.queries).overview(filters=Filters(window="1 h")).headline
    ((failed, rescued, fell_back),) = _sql(ctx, f"""
        SELECT count(*) FILTER (WHERE {FAILED}), count(*) FILTER (WHERE {FAILED} AND outcome = 'ok'),
               count(*) FILTER (WHERE {FELL_BACK}) FROM requests""")  # fmt: skip
    assert (h.upstream_failed, h.rescued, h.fell_back) == (failed, rescued, fell_back) == (24, 18, 18)


def test_overview_rollups_of_old_segments_equal_the_lists(ctx):
    """The overview's per-segment rollups (dashboard/rollups.py) of segments written before the
    columns derive the scalars from the lists, as the scan does."""
    import time

    from llmgw_kernel.dashboard.rollups import Rollups

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    assert Rollups(ctx.data_dir, min_bytes=0).build_missing(con, time.time()) >= 2
    store = OverviewStore(ctx.data_dir, queries=LogQueries(ctx.data_dir, ttl_s=0, clock=lambda: NOW))
    h = store.overview(filters=Filters(window="1 h")).headline
    assert store.last_plan is not None and len(store.last_plan.rolled) >= 2
    assert (h.upstream_failed, h.rescued, h.fell_back) == (24, 18, 18)
    store.close()


def test_a_served_request_logs_the_scalars_through_the_log_worker(make_gateway):
    gw = make_gateway()
    client = openai.OpenAI(base_url=gw.base_url, api_key=UPSTREAM_KEY, max_retries=0)
    for model in ("gpt-4o-mini", "fallback", "broken-500", "no-such-route"):
        with contextlib.suppress(openai.APIError):  # the failed ones answer an error: they are logged all the same
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    rows = wait_for_rows(gw, "true", n=4)
    assert len(rows) == 4
    for row in rows:
        plan = row["plan"] or []
        attempts = [a for a in row["attempts"] or [] if not (a["error"] or "").startswith("skipped:")]  # made
        assert row["attempt_count"] == len(attempts), row["route"]
        assert row["first_planned"] == (plan[0] if plan else None), row["route"]
        assert row["first_attempt_failed"] is bool(attempts and attempts[0]["error"] is not None), row["route"]
    by_route = {r["route"]: r for r in rows}
    assert by_route["fallback"]["attempt_count"] >= 2 and by_route["fallback"]["first_attempt_failed"] is True
    assert by_route["gpt-4o-mini"]["attempt_count"] == 1 and by_route["gpt-4o-mini"]["first_attempt_failed"] is False
    assert by_route["no-such-route"]["first_planned"] is None
