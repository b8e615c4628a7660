"""The overview's per-segment rollups (dashboard/rollups.py) against a real log written by the
proxy's LogWriter: every figure read through the stored entries equals the figure scanned from
Parquet, over windows that cut minutes, with and without filters, with a live segment beside the
rolled ones; an entry that is not sound is never used."""

from __future__ import annotations

import math
import os
import time

import duckdb
import pandas as pd
import pytest

from llmgw_kernel.dashboard import OverviewStore
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.rollups import ENV, Rollups, cache_root
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.segments import ANCHOR_NAME, list_segments, log_dir
from llmgw_kernel.log.writer import LogWriter

T0 = 1_800_000_000.0  # a whole minute
A, B = "openai/gpt-4o-mini", "anthropic/claude-haiku"
SHAPES = [  # outcome, attempts (target, error), retries, error type
    ("ok", [(A, None)], 0, None),
    ("ok", [(A, "HTTP 500"), (B, None)], 0, None),
    ("ok", [(B, "HTTP 500"), (B, None)], 1, None),
    ("upstream_error", [(B, "HTTP 503")], 0, "upstream_error"),
    ("limited", [], 0, "rate_limited"),
    ("timeout", [(A, "timed out")], 0, "timeout"),
]


def _record(i: int, ts: float) -> RequestRecord:
    outcome, attempts, retries, error_type = SHAPES[i % len(SHAPES)]
    check = i % 17 == 0
    rec = RequestRecord(f"r{i:05d}", ts, "cache.check" if check else "chat.completions")
    rec.route = ("chat", "batch", "embed")[i % 3]
    rec.outcome, rec.status = outcome, 200 if outcome == "ok" else 502
    rec.error_type = error_type
    rec.error_message = f"{error_type} #{i % 4}" if error_type else None
    rec.attempts = [{"target": t, "status": 500 if e else 200, "latency_ms": 3.0, "error": e} for t, e in attempts]
    rec.plan = tuple(t for t, _ in attempts) or None
    rec.retries = retries
    rec.target = next((t for t, e in attempts if e is None), None)
    rec.latency_ms = 5.0 + (i * 7919) % 1000 / 10
    rec.ttft_ms = rec.latency_ms / 3 if i % 2 else None
    rec.ts_end = ts + rec.latency_ms / 1000
    rec.usage = {"prompt_tokens": i % 50, "completion_tokens": i % 30, "total_tokens": i % 50 + i % 30}
    rec.cost_usd = (i % 50) * 1e-6 + (i % 30) * 3e-6 if rec.target or check else None
    rec.cache = ("hit", "miss", "semantic-hit", None)[i % 4]
    rec.saved_usd = 1e-5 * (i % 5) if rec.cache in ("hit", "semantic-hit") else None
    rec.team = ("search", "ads")[i % 2]
    return rec


@pytest.fixture(scope="module")
def log_dir_(tmp_path_factory):
    """Four sealed segments over ~6 minutes, rolled up, then a fifth (unrolled: the live tail)."""
    data_dir = tmp_path_factory.mktemp("rollups")
    writer = LogWriter(data_dir, flush_ms=10_000)
    i = 0
    for seg in range(4):
        for _ in range(90):
            writer.append(_record(i, T0 + 4 * i + seg * 0.5))
            i += 1
        writer.flush()
    old = os.environ.pop(ENV, None)
    try:
        rollups = Rollups(data_dir, min_bytes=0)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        assert rollups.build_missing(con, time.time()) == 4
        con.close()
    finally:
        if old is not None:
            os.environ[ENV] = old
    for _ in range(40):
        writer.append(_record(i, T0 + 4 * i))
        i += 1
    writer.close()
    return data_dir


def _store(data_dir, monkeypatch, rolled: bool) -> OverviewStore:
    if rolled:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, "off")
    return OverviewStore(data_dir, ttl_s=0, clock=lambda: T0 + 3600)


WINDOWS = [
    Filters(since=T0 - 30, until=T0 + 4000),  # the whole log
    Filters(since=T0 + 95.5, until=T0 + 1300.25),  # cuts a minute at each end
    Filters(since=T0 + 130, until=T0 + 170),  # inside one minute: nothing rolled
    Filters(since=T0 + 95.5, until=T0 + 1300.25, route="chat"),
    Filters(since=T0 + 95.5, until=T0 + 1300.25, team="ads"),  # not per team: scanned
]


def _frames_equal(a: pd.DataFrame | None, b: pd.DataFrame | None) -> None:
    assert a is not None and b is not None
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, rtol=1e-9)


@pytest.mark.parametrize("filters", WINDOWS, ids=["all", "cut", "one-minute", "route", "team"])
def test_rolled_figures_equal_the_scan(log_dir_, monkeypatch, filters):
    scan = _store(log_dir_, monkeypatch, rolled=False)
    rolled = _store(log_dir_, monkeypatch, rolled=True)
    try:
        want, got = scan.overview(filters=filters), rolled.overview(filters=filters)
        used = len(rolled.last_plan.rolled) if rolled.last_plan else 0
        scanned_only = filters.team is not None or filters.since == T0 + 130
        assert (used == 0) == scanned_only, used  # the entries were read where they can answer
        assert scan.last_plan is None or not scan.last_plan.rolled
        for name in want.headline.__slots__:
            w, g = getattr(want.headline, name), getattr(got.headline, name)
            assert g == pytest.approx(w, rel=1e-9), name
        assert want.headline.requests > 0 and want.headline.upstream_failed > 0 and want.headline.checks > 0
        _frames_equal(want.series, got.series)
        _frames_equal(want.errors_by_reason, got.errors_by_reason)
        _frames_equal(want.errors_by_target, got.errors_by_target)
        _frames_equal(want.recent, got.recent)
        assert want.routes == got.routes
    finally:
        scan.close()
        rolled.close()


def test_the_scan_equals_duckdb_over_the_log(log_dir_, monkeypatch):
    """The figures both ways are DuckDB's own over the rows (a few, straight from the view)."""
    store = _store(log_dir_, monkeypatch, rolled=True)
    f = WINDOWS[1]
    try:
        got = store.overview(filters=f)
        assert store.last_plan is not None and store.last_plan.rolled
        con = store.queries._con
        where, params = f.where(T0 + 3600)
        client = "endpoint IS DISTINCT FROM 'cache.check'"
        n, errors, cost, failed = con.execute(
            f"SELECT count(*) FILTER (WHERE {client}), count(*) FILTER (WHERE {client} AND outcome <> 'ok'), "
            f"sum(cost_usd), count(*) FILTER (WHERE {client} AND {_FAILED}) "
            f"FROM requests WHERE {where}",
            params,
        ).fetchall()[0]
        h = got.headline
        assert (h.requests, h.errors, h.upstream_failed) == (n, errors, failed)
        assert h.cost_usd == pytest.approx(cost, rel=1e-9)
        by_target = con.execute(
            f"SELECT x.target, count(*) FROM (SELECT unnest(attempts) AS x FROM requests WHERE {where} AND {client}) "
            "GROUP BY 1 ORDER BY 1",
            params,
        ).fetchall()
        assert sorted(zip(got.errors_by_target.target, got.errors_by_target.attempts, strict=True)) == by_target
        lat, ttft = con.execute(
            f"SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]), quantile_cont(ttft_ms, [0.5, 0.95, 0.99]) "
            f"FROM requests WHERE {where} AND {client}",
            params,
        ).fetchall()[0]
        assert [h.p50_ms, h.p95_ms, h.p99_ms] == lat and [h.ttft_p50_ms, h.ttft_p95_ms, h.ttft_p99_ms] == ttft
    finally:
        store.close()


@pytest.mark.parametrize("outcome", [None, "ok", "timeout"])
@pytest.mark.parametrize("limit", [5, 100, 1000])
def test_recent_rows_are_the_window_s_newest(log_dir_, monkeypatch, outcome, limit):
    """The recent rows, looked for in the window's last minute and then further back (store._recent),
    are DuckDB's newest ``limit`` client rows of the window (of ``outcome``): ~15 rows a minute here,
    so 100 and 1000 need the search widened, 1000 to the whole window (fewer rows than that)."""
    monkeypatch.delenv(ENV, raising=False)
    store = OverviewStore(log_dir_, ttl_s=0, clock=lambda: T0 + 3600, recent_limit=limit)
    f = WINDOWS[1]
    try:
        got = store.overview(filters=f, outcome=outcome).recent
        where, params = f.where(T0 + 3600)
        want = store.queries._con.execute(
            f"SELECT request_id FROM requests WHERE {where} AND endpoint IS DISTINCT FROM 'cache.check' "
            "AND ($outcome IS NULL OR outcome = $outcome) ORDER BY ts DESC LIMIT $limit",
            {**params, "outcome": outcome, "limit": limit},
        ).fetchall()
        assert list(got.request_id) == [r[0] for r in want] and len(want) >= min(limit, 40)
    finally:
        store.close()


def test_an_unsound_entry_is_not_used_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    writer = LogWriter(tmp_path, flush_ms=10_000)
    for seg in range(2):
        for i in range(seg * 200, seg * 200 + 200):
            writer.append(_record(i, T0 + 2 * i))
        writer.flush()
    writer.close()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    assert Rollups(tmp_path, min_bytes=0).build_missing(con, time.time()) == 2
    root = cache_root(tmp_path)
    assert root is not None
    first, second = sorted(root.iterdir())
    f = Filters(since=T0, until=T0 + 900)
    monkeypatch.setenv(ENV, "off")
    want = OverviewStore(tmp_path, ttl_s=0).overview(filters=f).headline
    monkeypatch.delenv(ENV)
    # one entry copied over the other's name, the other scribbled on
    data = bytearray(second.read_bytes())
    first.write_bytes(second.read_bytes())
    data[len(data) // 2] ^= 0xFF
    second.write_bytes(bytes(data))
    store = OverviewStore(tmp_path, ttl_s=0)
    got = store.overview(filters=f).headline
    assert store.last_plan is not None and store.last_plan.rolled == ()
    assert (got.requests, got.errors, got.upstream_failed, got.cost_usd) == (
        want.requests, want.errors, want.upstream_failed, pytest.approx(want.cost_usd, rel=1e-9),
    )  # fmt: skip
    assert not first.exists() and not second.exists()
    # rolled up again by the next round, and used
    assert Rollups(tmp_path, min_bytes=0).build_missing(con, time.time()) == 2
    store.overview(filters=f.with_(until=T0 + 901))
    assert len(store.last_plan.rolled) == 2
    store.close()


def test_entries_of_segments_gone_are_removed(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    writer = LogWriter(tmp_path, flush_ms=10_000)
    for i in range(50):
        writer.append(_record(i, T0 + i))
    writer.close()
    con = duckdb.connect()
    rollups = Rollups(tmp_path, min_bytes=0)
    assert rollups.build_missing(con, time.time()) == 1
    root = cache_root(tmp_path)
    assert root is not None and len(list(root.iterdir())) == 1
    (seg,) = [s.path for s in list_segments(log_dir(tmp_path)) if s.path.name != ANCHOR_NAME]
    seg.unlink()
    assert rollups.build_missing(con, time.time()) == 0
    assert list(root.iterdir()) == []


def test_the_dashboard_builds_them_in_the_background(tmp_path, monkeypatch):
    """The Panel app's store rolls up sealed segments after its first answer; a notebook's does not."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr("llmgw_kernel.dashboard.rollups.MIN_BYTES", 0)
    writer = LogWriter(tmp_path, flush_ms=10_000)
    for i in range(50):
        writer.append(_record(i, T0 + i))
    writer.close()
    plain = OverviewStore(tmp_path, ttl_s=0)
    plain.overview(filters=Filters(since=T0, until=T0 + 600))
    plain.close()
    root = cache_root(tmp_path)
    assert root is not None and not root.exists()
    store = OverviewStore(tmp_path, ttl_s=0, build_rollups=True)
    assert store._builder is not None
    store._builder.delay_s = 0
    store.overview(filters=Filters(since=T0, until=T0 + 600))
    deadline = time.monotonic() + 60
    while not (root.exists() and list(root.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(root.iterdir())) == 1
    store.close()
    got = OverviewStore(tmp_path, ttl_s=0)
    got.overview(filters=Filters(since=T0, until=T0 + 600))
    assert got.last_plan is not None and len(got.last_plan.rolled) == 1
    assert math.isfinite(got.overview(filters=Filters(since=T0, until=T0 + 600)).headline.cost_usd)
    got.close()


def test_an_entry_of_other_sql_is_not_used(tmp_path, monkeypatch):
    """An entry rolled up by another release's SQL (its tag differs), even sound, is not read."""
    import zlib

    import pyarrow as pa

    monkeypatch.delenv(ENV, raising=False)
    writer = LogWriter(tmp_path, flush_ms=10_000)
    for i in range(200):
        writer.append(_record(i, T0 + 2 * i))
    writer.close()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    assert Rollups(tmp_path, min_bytes=0).build_missing(con, time.time()) == 1
    root = cache_root(tmp_path)
    assert root is not None
    (entry,) = root.iterdir()
    f = Filters(since=T0, until=T0 + 900)
    store = OverviewStore(tmp_path, ttl_s=0)
    store.overview(filters=f)
    assert store.last_plan is not None and len(store.last_plan.rolled) == 1
    table = pa.ipc.open_file(pa.BufferReader(entry.read_bytes())).read_all()
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"llmgw_sql"}
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema.with_metadata(meta)) as w:
        w.write_table(table.replace_schema_metadata(meta))
    data = sink.getvalue().to_pybytes()
    entry.unlink()
    other = root / (entry.name.rsplit(".", 2)[0] + f".{zlib.crc32(data):08x}.arrow")
    other.write_bytes(data)
    store.overview(filters=f.with_(until=T0 + 901))
    assert store.last_plan.rolled == () and not other.exists()
    store.close()


#: a request some attempt of which was made and failed (a target skipped by its open breaker was not called)
_FAILED = "len(list_filter(attempts, lambda a: a.error IS NOT NULL AND NOT starts_with(a.error, 'skipped:'))) > 0"


def _routing_truth(con, where, params):
    """The routing page's routes and shares, DuckDB's own over the log's lists (not the scalars)."""
    client = "endpoint IS DISTINCT FROM 'cache.check'"
    failed = _FAILED
    routes = con.execute(
        f"SELECT route, count(*), count(*) FILTER (WHERE outcome IS DISTINCT FROM 'ok'), count(*) FILTER (WHERE {failed}), "
        f"count(*) FILTER (WHERE {failed} AND outcome = 'ok'), "
        "count(*) FILTER (WHERE target <> plan[1]) "  # a fallback: served by another than the first planned
        f"FROM requests WHERE {where} AND {client} AND route IS NOT NULL AND (plan[1] IS NOT NULL OR target IS NOT NULL) "
        "GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    planned = con.execute(
        f"SELECT route, plan[1], count(*) FROM requests WHERE {where} AND {client} AND plan[1] IS NOT NULL "
        "GROUP BY ALL ORDER BY 1, 2",
        params,
    ).fetchall()
    served = con.execute(
        f"SELECT route, target, count(*) FROM requests WHERE {where} AND {client} AND plan[1] IS NOT NULL "
        "AND target IS NOT NULL GROUP BY ALL ORDER BY 1, 2",
        params,
    ).fetchall()
    targets = con.execute(
        "SELECT x.target, count(*), count(*) FILTER (WHERE x.error IS NOT NULL), quantile_cont(x.latency_ms, [0.5, 0.95]) "
        f"FROM (SELECT unnest(attempts) AS x FROM requests WHERE {where} AND {client}) GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    return routes, planned, served, targets


@pytest.mark.parametrize("filters", WINDOWS, ids=["all", "cut", "one-minute", "route", "team"])
def test_routing_rolled_equals_scanned_equals_duckdb(log_dir_, monkeypatch, filters):
    """The routing page's routes and shares (rollups.ROUTING_SQL rows) and per-target attempts,
    failures and latency percentiles (LATENCY_SQL rows) read through the entries equal the same
    figures scanned, and DuckDB's own over the lists; the entries are read where they can answer
    (fails before the routing rows were rolled up: the Plan had none)."""
    from llmgw_kernel.dashboard.rollups import window_plan
    from llmgw_kernel.dashboard.routing_data import per_target, routes_and_shares

    monkeypatch.delenv(ENV, raising=False)
    store = OverviewStore(log_dir_, ttl_s=0, clock=lambda: T0 + 3600)
    try:
        con = store.queries._con
        where, params = filters.where(T0 + 3600)
        plan = window_plan(Rollups(log_dir_), filters, T0 + 3600)
        scanned_only = filters.team is not None or filters.since == T0 + 130
        assert (plan is None) == (filters.team is not None)
        if not scanned_only:
            assert plan is not None and plan.rolled and plan.routing.num_rows and plan.latency().num_rows
        got = routes_and_shares(con, plan, where, params)
        want = routes_and_shares(con, None, where, params)
        for g, w in zip(got, want, strict=True):
            _frames_equal(w, g)
        routes, shares = got
        truth_routes, planned, served, truth_targets = _routing_truth(con, where, params)
        targets, scanned_targets = per_target(con, plan, where, params), per_target(con, None, where, params)
        _frames_equal(scanned_targets, targets)
        got_targets = [
            (t, a, f, list(q)) for t, a, f, q in targets[["target", "attempts", "failed", "q"]].itertuples(index=False)
        ]
        assert sorted(got_targets) == truth_targets  # percentiles exactly DuckDB's over the same values
        assert truth_routes, "the window holds routed requests"
        cols = ["route", "requests", "errors", "upstream_failed", "rescued", "fell_back"]
        assert sorted(map(tuple, routes[cols].itertuples(index=False))) == truth_routes
        if filters.route is None:  # rescues and fallbacks seen (the chat route's rows have none)
            assert any(r[4] for r in truth_routes) and any(r[5] for r in truth_routes)
        got_planned = sorted(
            (r, t, n) for r, t, n in shares[["route", "target", "planned_first"]].itertuples(index=False) if n
        )
        got_served = sorted((r, t, n) for r, t, n in shares[["route", "target", "served"]].itertuples(index=False) if n)
        assert got_planned == planned and got_served == served
    finally:
        store.close()


def test_the_routing_page_reads_the_entries(log_dir_, monkeypatch):
    """routing_data.routing over a whole-log window answers from the entries: the same frames as
    with the entries off, and the scan relation it was handed names only the unrolled rows."""
    from llmgw_kernel.dashboard import routing_data
    from llmgw_kernel.dashboard.context import Context
    from llmgw_kernel.dashboard.queries import LogQueries

    f = WINDOWS[1]
    out = {}
    plans = []
    real = routing_data.routes_and_shares

    def spy(con, plan, where, params):
        plans.append(plan)
        return real(con, plan, where, params)

    monkeypatch.setattr(routing_data, "routes_and_shares", spy)
    for mode in ("off", "on"):
        if mode == "off":
            monkeypatch.setenv(ENV, "off")
        else:
            monkeypatch.delenv(ENV, raising=False)
        ctx = Context(log_dir_, queries=LogQueries(log_dir_, ttl_s=0, clock=lambda: T0 + 3600))
        try:
            out[mode] = routing_data.routing(ctx, f)
        finally:
            ctx.close()
    assert plans[0] is not None and plans[0].rolled == ()
    assert plans[1] is not None and len(plans[1].rolled) == 4
    for name in ("routes", "shares", "targets"):
        _frames_equal(getattr(out["off"], name), getattr(out["on"], name))
