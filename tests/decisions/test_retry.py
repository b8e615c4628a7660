"""The retry decisions as a table: backoff, Retry-After, context-window errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from llmgw_kernel.decisions.retry import backoff_ms, is_context_window_error, jitter, retry_after_ms, retry_delay_ms


def test_backoff_is_deterministic_full_jitter_under_an_exponential_ceiling():
    draws = [backoff_ms("p-1", f"req_{i}", "a/m", 3, base_ms=100, cap_ms=10_000) for i in range(2000)]
    assert all(0 <= d < 400 for d in draws)  # ceiling 100 * 2**2
    assert 180 < sum(draws) / len(draws) < 220  # uniform: mean ≈ 200
    assert draws[7] == backoff_ms("p-1", "req_7", "a/m", 3, 100, 10_000)  # replays draw the same
    assert jitter("p-1", "req_7", "a/m", 1) != jitter("p-2", "req_7", "a/m", 1)


@pytest.mark.parametrize(("retry", "ceiling"), [(1, 100), (2, 200), (4, 800), (9, 1000)])
def test_the_ceiling_doubles_per_retry_up_to_the_cap(retry, ceiling):
    assert max(backoff_ms("p", f"r{i}", "t", retry, 100, 1000) for i in range(500)) <= ceiling
    assert max(backoff_ms("p", f"r{i}", "t", retry, 100, 1000) for i in range(500)) > ceiling * 0.9


@pytest.mark.parametrize(
    ("header", "ms"),
    [("2", 2000.0), ("0.5", 500.0), (" 3 ", 3000.0), (None, None), ("", None), ("soon", None), ("-1", 0.0)],
)
def test_retry_after_seconds(header, ms):
    assert retry_after_ms(header) == ms


def test_retry_after_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(datetime(2026, 1, 1, 12, 0, 4, tzinfo=UTC), usegmt=True)
    assert retry_after_ms(header, now=now.timestamp()) == 4000.0


@pytest.mark.parametrize(
    ("backoff", "after", "cap", "wait"),
    [(30, None, 5000, 30), (30, 1000, 5000, 1000), (3000, 1000, 5000, 3000), (30, 6000, 5000, None)],
)
def test_retry_delay_honours_retry_after_up_to_the_cap(backoff, after, cap, wait):
    assert retry_delay_ms(backoff, after, cap) == wait


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (400, "context_length_exceeded", "", True),
        (400, None, "This model's maximum context length is 8192 tokens", True),
        (400, None, "prompt is too long: 250000 tokens > 200000 maximum", True),
        (400, None, "Invalid value for temperature", False),
        (500, "context_length_exceeded", "", False),
    ],
)
def test_context_window_errors(status, code, message, expected):
    assert is_context_window_error(status, code, message) is expected
