"""Retries, timeouts, deadlines and fallbacks against a real upstream that fails on command."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from conftest import policy_for, wait_for_rows

MSG = [{"role": "user", "content": "x"}]
OK = {"provider": "other", "model": "gpt-4o"}


def _t(model: str) -> dict:
    return {"provider": "local", "model": model}


ROUTES = {
    "r-500": {"targets": [_t("status-500-r"), OK], "retry": {"attempts": 3, "backoff_ms": 20}},
    "r-500-only": {"targets": [_t("status-500-only")], "retry": {"attempts": 3, "backoff_ms": 20}},
    "r-503-flaky": {"targets": [_t("flaky-2-503-a")], "retry": {"attempts": 3, "backoff_ms": 20}},
    "r-429": {"targets": [_t("status-429-retry-after-1"), OK], "retry": {"attempts": 2, "backoff_ms": 1}},
    "r-429-cap": {
        "targets": [_t("status-429-retry-after-2"), OK],
        "retry": {"attempts": 2, "backoff_ms": 1, "retry_after_cap_ms": 500},
    },
    "r-hang": {"targets": [_t("hang"), OK], "timeout_ms": 300},
    "r-hang-retry": {"targets": [_t("hang"), OK], "timeout_ms": 200, "retry": {"attempts": 2, "backoff_ms": 1}},
    "r-reset": {"targets": [_t("reset"), OK], "retry": {"attempts": 2, "backoff_ms": 1}},
    "r-deadline": {"targets": [{**_t("hang"), "timeout_ms": 5000}, OK], "deadline_ms": 400},
    "r-deadline-backoff": {
        "targets": [_t("status-503-dl"), OK],
        "retry": {"attempts": 5, "backoff_ms": 300, "max_backoff_ms": 300},
        "deadline_ms": 250,
    },
    "r-context": {"targets": [_t("context-small"), OK]},
    "r-400": {"targets": [_t("status-400"), OK], "retry": {"attempts": 3}},
    "r-stream-before": {"targets": [_t("stream-cut-0"), OK], "retry": {"attempts": 2, "backoff_ms": 1}},
    "r-stream-after": {"targets": [_t("stream-cut-2"), OK], "retry": {"attempts": 2, "backoff_ms": 1}},
}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    from conftest import Gateway

    policy = policy_for(upstream.base_url)
    policy["routes"].update(ROUTES)
    g = Gateway(tmp_path_factory.mktemp("attempts"), policy)
    yield g
    g.terminate()


def _chat(gw, model: str, rid: str, **extra) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions", headers={"x-request-id": rid},
        json={"model": model, "messages": MSG, **extra}, timeout=30,
    )  # fmt: skip


def _row(gw, rid: str) -> dict:
    return wait_for_rows(gw, f"client_request_id = '{rid}'")[0]


def test_500_is_retried_with_backoff_then_falls_back(gw, upstream):
    r = _chat(gw, "r-500", "a-500")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert upstream.counts["status-500-r"] == 3  # counted at the upstream: 3 tries, then the fallback
    row = _row(gw, "a-500")
    assert [a["target"] for a in row["attempts"]] == ["local/status-500-r"] * 3 + ["other/gpt-4o"]
    assert "retry 1 in" in row["attempts"][0]["error"] and "retry 2 in" in row["attempts"][1]["error"]
    assert row["retries"] == 2 and 0 <= row["backoff_ms"] <= 20 + 40


def test_retries_exhausted_on_the_only_target_return_its_error(gw, upstream):
    r = _chat(gw, "r-500-only", "a-500-only")
    assert r.status_code == 500 and r.json()["error"]["code"] == "upstream_500"
    assert upstream.counts["status-500-only"] == 3


def test_flaky_503_succeeds_on_the_third_try(gw, upstream):
    r = _chat(gw, "r-503-flaky", "a-flaky")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "local/flaky-2-503-a"
    assert upstream.counts["flaky-2-503-a"] == 3
    row = _row(gw, "a-flaky")
    assert [a["status"] for a in row["attempts"]] == [503, 503, 200]


def test_429_retry_after_is_honoured(gw, upstream):
    t0 = time.monotonic()
    r = _chat(gw, "r-429", "a-429")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert time.monotonic() - t0 >= 1.0
    assert _row(gw, "a-429")["backoff_ms"] >= 1000
    times = [q["t"] for q in upstream.requests if q["body"].get("model") == "status-429-retry-after-1"]
    assert len(times) == 2 and times[1] - times[0] >= 0.99  # measured at the upstream


def test_retry_after_over_the_cap_leaves_the_target_at_once(gw, upstream):
    t0 = time.monotonic()
    r = _chat(gw, "r-429-cap", "a-429-cap")
    assert r.status_code == 200 and time.monotonic() - t0 < 1.0
    assert upstream.counts["status-429-retry-after-2"] == 1
    assert "Retry-After over the cap" in _row(gw, "a-429-cap")["attempts"][0]["error"]


def test_a_hang_times_out_per_attempt_then_falls_back(gw):
    t0 = time.monotonic()
    r = _chat(gw, "r-hang", "a-hang")
    elapsed = time.monotonic() - t0
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert 0.3 <= elapsed < 1.4  # the route's 300 ms, not the provider's 1500 ms
    row = _row(gw, "a-hang")
    assert row["attempts"][0]["error"].startswith("timeout")


def test_timeouts_are_retried(gw, upstream):
    before = upstream.counts["hang"]
    r = _chat(gw, "r-hang-retry", "a-hang-retry")
    assert r.status_code == 200
    assert upstream.counts["hang"] - before == 2


def test_a_connection_reset_is_retried_then_falls_back(gw, upstream):
    before = upstream.counts["reset"]
    r = _chat(gw, "r-reset", "a-reset")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert upstream.counts["reset"] - before == 2
    assert _row(gw, "a-reset")["attempts"][0]["error"].startswith("connection")


def test_the_deadline_bounds_the_whole_request(gw):
    t0 = time.monotonic()
    r = _chat(gw, "r-deadline", "a-deadline")
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    assert "deadline_ms 400" in r.json()["error"]["message"]
    assert 0.35 <= elapsed < 1.5
    row = _row(gw, "a-deadline")
    assert row["outcome"] == "timeout" and "deadline" in row["attempts"][-1]["error"]


def test_a_backoff_longer_than_the_deadline_falls_back_instead_of_sleeping(gw, upstream):
    t0 = time.monotonic()
    r = _chat(gw, "r-deadline-backoff", "a-deadline-backoff")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert time.monotonic() - t0 < 0.6  # no sleep ran past the 250 ms deadline
    row = _row(gw, "a-deadline-backoff")
    assert row["backoff_ms"] < 250 - 25  # sleeps never ate into the deadline's last 10%


def test_a_context_window_error_falls_back_to_the_next_target(gw):
    r = _chat(gw, "r-context", "a-context")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert _row(gw, "a-context")["attempts"][0]["status"] == 400


def test_a_plain_400_is_neither_retried_nor_fallen_back(gw, upstream):
    before = upstream.counts["status-400"]
    r = _chat(gw, "r-400", "a-400")
    assert r.status_code == 400
    assert upstream.counts["status-400"] - before == 1


def _stream(gw, model: str, rid: str) -> tuple[httpx.Response, list[str]]:
    with httpx.stream(
        "POST", f"{gw.base_url}/chat/completions", headers={"x-request-id": rid},
        json={"model": model, "messages": MSG, "stream": True}, timeout=30,
    ) as r:  # fmt: skip
        return r, [line for line in r.iter_lines() if line]


def test_a_stream_cut_before_the_first_byte_is_retried_then_falls_back(gw, upstream):
    before = upstream.counts["stream-cut-0"]
    r, lines = _stream(gw, "r-stream-before", "a-sb")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert lines[-1] == "data: [DONE]"
    assert upstream.counts["stream-cut-0"] - before == 2


def test_a_stream_cut_after_the_first_byte_is_not_retried_and_ends_with_an_error_event(gw, upstream):
    before = upstream.counts["stream-cut-2"]
    r, lines = _stream(gw, "r-stream-after", "a-sa")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "local/stream-cut-2"
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert events[-1]["error"]["code"] == "upstream_unreachable" and "data: [DONE]" not in lines
    assert upstream.counts["stream-cut-2"] - before == 1
    assert "after first byte" in _row(gw, "a-sa")["attempts"][-1]["error"]


def test_a_stream_whose_upstream_hangs_before_the_first_byte_times_out_then_falls_back(gw):
    t0 = time.monotonic()
    r, lines = _stream(gw, "r-hang", "a-stream-hang")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert lines[-1] == "data: [DONE]" and time.monotonic() - t0 < 1.4
    assert _row(gw, "a-stream-hang")["attempts"][0]["error"].startswith("timeout")


def test_the_deadline_bounds_a_stream_until_its_first_event(gw):
    t0 = time.monotonic()
    with httpx.stream(
        "POST", f"{gw.base_url}/chat/completions",
        json={"model": "r-deadline", "messages": MSG, "stream": True}, timeout=30,
    ) as r:  # fmt: skip
        body = json.loads(r.read())
    assert r.status_code == 504 and body["error"]["code"] == "deadline_exceeded"
    assert time.monotonic() - t0 < 1.5


def test_retries_are_counted_in_metrics(gw):
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'llmgw_upstream_retries_total{route="r-500",target="local/status-500-r"} 2.0' in text
