"""The overview data store against a real log written by the proxy's LogWriter."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from llmgw_kernel.dashboard import ERROR_OUTCOMES, WINDOWS, OverviewStore
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter

NOW = 1_800_000_000.0 + 30  # 30 s into a minute


def _record(i: int, age_s: float, route: str = "demo", outcome: str = "ok", latency: float = 10.0,
            tokens: tuple[int, int] | None = (3, 5), ttft: float | None = None) -> RequestRecord:  # fmt: skip
    rec = RequestRecord(f"req_{i:04d}", NOW - age_s, "chat.completions")
    rec.ts_end = rec.ts + latency / 1000
    rec.route = route
    rec.outcome = outcome
    rec.status = 200 if outcome == "ok" else 502
    rec.target = f"{route}/model" if outcome == "ok" else None
    rec.latency_ms = latency
    rec.ttft_ms = ttft
    if tokens:
        rec.usage = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": sum(tokens)}
    return rec


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    writer = LogWriter(data_dir, flush_ms=10_000)
    records = [
        # 6 requests in the last 15 min: 4 ok on demo, 1 upstream error, 1 timeout on "other"
        _record(1, 10, latency=10.0, ttft=4.0),
        _record(2, 20, latency=20.0, ttft=6.0),
        _record(3, 70, latency=30.0),
        _record(4, 200, latency=40.0),
        _record(5, 300, outcome="upstream_error", latency=5.0, tokens=None),
        _record(6, 400, route="other", outcome="timeout", latency=1000.0, tokens=None),
        # 2 more within the hour, 1 within the day, 1 older than a day
        _record(7, 1800, latency=50.0, tokens=(10, 20)),
        _record(8, 3000, route="other", latency=60.0, tokens=(1, 1)),
        _record(9, 7200, latency=70.0),
        _record(10, 90_000, latency=80.0),
    ]
    for rec in records[:5]:
        writer.append(rec)
    writer.flush()  # two segments, so the view's union is exercised
    for rec in records[5:]:
        writer.append(rec)
    writer.close()
    return data_dir


@pytest.fixture()
def store(log_dir):
    s = OverviewStore(log_dir, ttl_s=0, clock=lambda: NOW)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("window", "requests", "errors", "prompt", "completion"),
    [
        ("15 min", 6, 2, 12, 20),
        ("1 h", 8, 2, 23, 41),
        ("24 h", 9, 2, 26, 46),
    ],
)
def test_headline_counts_what_the_window_holds(store, window, requests, errors, prompt, completion):
    h = store.overview(window).headline
    assert (h.requests, h.errors, h.prompt_tokens, h.completion_tokens) == (requests, errors, prompt, completion)
    assert h.error_rate == pytest.approx(errors / requests)


def test_latency_percentiles_are_continuous_quantiles(store):
    h = store.overview("15 min").headline
    latencies = [10.0, 20.0, 30.0, 40.0, 5.0, 1000.0]
    assert h.p50_ms == pytest.approx(np.percentile(latencies, 50))
    assert h.p95_ms == pytest.approx(np.percentile(latencies, 95))
    assert h.ttft_p50_ms == pytest.approx(statistics.median([4.0, 6.0]))


def test_route_filter(store):
    h = store.overview("1 h", route="other").headline
    assert (h.requests, h.errors) == (2, 1)
    assert store.overview("1 h").routes == ("demo", "other")


def test_series_has_one_row_per_bucket_and_sums_to_the_window(store):
    for label, window in WINDOWS.items():
        series = store.overview(label).series
        assert len(series) == window.seconds // window.bucket_s
        assert series["t"].is_monotonic_increasing
        per_bucket = series["requests_per_min"] * window.bucket_s / 60
        # buckets are aligned to whole minutes, so they may reach up to one bucket further back
        assert per_bucket.sum() >= store.overview(label).headline.requests


def test_series_splits_errors_by_outcome_per_minute(store):
    series = store.overview("15 min").series.set_index("t")
    assert [c for c in series.columns if c.startswith("errors_per_min_")] == [
        f"errors_per_min_{o}" for o in ERROR_OUTCOMES
    ]
    assert series["errors_per_min_upstream_error"].sum() == 1
    assert series["errors_per_min_timeout"].sum() == 1
    assert series["errors_per_min_client_error"].sum() == 0
    newest = series.iloc[-1]  # NOW - 10 s and NOW - 20 s fall in the current minute
    assert newest["requests_per_min"] == 2
    assert newest["p50_ms"] == pytest.approx(15.0)
    assert newest["prompt_tokens_per_min"] == 6
    empty = series[series["requests_per_min"] == 0]
    assert empty["p50_ms"].isna().all() and (empty["completion_tokens_per_min"] == 0).all()


def test_24h_buckets_report_per_minute_rates(store):
    series = store.overview("24 h").series
    assert (series["t"].diff().dropna().dt.total_seconds() == 600).all()
    assert series["requests_per_min"].sum() * 10 == pytest.approx(9, abs=1)


def test_recent_is_newest_first_with_the_table_columns(store):
    recent = store.overview("1 h").recent
    assert list(recent["request_id"]) == [f"req_{i:04d}" for i in (1, 2, 3, 4, 5, 6, 7, 8)]
    assert set(recent.columns) >= {"ts", "request_id", "route", "target", "status", "outcome", "latency_ms"}
    limited = OverviewStore(store.data_dir, ttl_s=0, recent_limit=3, clock=lambda: NOW)
    assert len(limited.overview("24 h").recent) == 3
    limited.close()


def test_recent_of_an_outcome_are_its_newest_rows_in_the_window(store):
    # the cutoff (the oldest of the newest n timestamps) is a top-n aggregate of the headline's
    # scan, filtered by the outcome: the rows past it are the newest n of that outcome
    limited = OverviewStore(store.data_dir, ttl_s=0, recent_limit=2, clock=lambda: NOW)
    assert list(limited.overview("24 h", outcome="ok").recent["request_id"]) == ["req_0001", "req_0002"]
    assert list(limited.overview("24 h", outcome="timeout").recent["request_id"]) == ["req_0006"]
    assert list(limited.overview("15 min", outcome="ok").recent["request_id"]) == ["req_0001", "req_0002"]
    assert len(limited.overview("24 h", outcome="abandoned").recent) == 0
    assert list(limited.overview("24 h").recent["request_id"]) == ["req_0001", "req_0002"]
    assert [r for r in limited.overview("24 h", route="other").recent["request_id"]] == ["req_0006", "req_0008"]
    limited.close()


def test_results_are_cached_per_filter_for_ttl(log_dir):
    now = [NOW]
    store = OverviewStore(log_dir, ttl_s=2.0, clock=lambda: now[0])
    first = store.overview("1 h")
    assert store.overview("1 h") is first
    assert store.overview("15 min") is not first
    now[0] += 2.5
    assert store.overview("1 h") is not first
    store.close()


def test_empty_log(tmp_path):
    store = OverviewStore(tmp_path, clock=lambda: NOW)
    data = store.overview("15 min")
    assert data.headline.requests == 0 and data.headline.p50_ms is None
    assert len(data.series) == 15 and data.series["requests_per_min"].sum() == 0
    assert len(data.recent) == 0 and data.routes == ()
    assert math.isnan(data.series["p95_ms"].iloc[0])
    store.close()
