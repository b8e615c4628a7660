"""Routing estimates tell a stream cut after its first byte from a failure that can fall back.

docs/routing.md "Streams and fallbacks": once a stream's first event reached the client, the
proxy neither retries nor falls back; it logs the attempt's error as ``... after first byte:
...``. The estimates used to count such a cut as an ordinary failure (fallback 1.0, error 0.0
for a route whose streams were all cut). Now, for a streamed request, a target's cut rate is
terminal (on whichever try it comes); a request that does not stream reads the whole answer
first, so for it a cut is an ordinary failure. Exact figures for a small window below.
"""

from __future__ import annotations

import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.replay import routing_estimates as est

OK = {"target": "a/x", "status": 200, "latency_ms": 10.0, "error": None}
CUT = {"target": "a/x", "status": 200, "latency_ms": 30.0, "error": "upstream_error after first byte: reset"}
FAILED = {"target": "a/x", "status": 503, "latency_ms": 20.0, "error": "upstream_error: 503"}
B_OK = {"target": "b/y", "status": 200, "latency_ms": 5.0, "error": None}


def policy(attempts: int):
    target = {"provider": "a", "model": "x"}
    return load_policy(
        {
            "providers": {"a": {"kind": "openai", "base_url": "http://127.0.0.1:9"},
                          "b": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
            "routes": {"r": {"targets": [target, {"provider": "b", "model": "y"}], "retry": {"attempts": attempts}}},
        }
    )  # fmt: skip


def window() -> dict[str, list]:
    """Target a/x: 4 attempts, 1 ok, 1 failed before the first byte, 2 cut after it; b/y never fails.
    Rows 0, 1, 3 stream; row 2 does not."""
    return {
        "request_id": ["r0", "r1", "r2", "r3"],
        "route": ["r"] * 4,
        "stream": [True, True, False, True],
        "prompt_tokens": [10, 10, 10, 10],
        "completion_tokens": [5, 5, 5, 5],
        "attempts": [[OK], [CUT], [FAILED, B_OK], [CUT]],
    }


@pytest.mark.parametrize(
    ("attempts", "error_rate", "fallback_rate"),
    [
        # streamed (x3): falls back 1/4, cut 1/2; not streamed: falls back 3/4, never cut
        (1, (3 * 0.5) / 4, (3 * 0.25 + 0.75) / 4),
        # two tries: streamed falls back (1/4)^2, cut 1/2 x (1 + 1/4); not streamed falls back (3/4)^2
        (2, (3 * 0.625) / 4, (3 * 0.0625 + 0.5625) / 4),
    ],
    ids=["one-try", "two-tries"],
)
def test_a_cut_stream_is_an_error_not_a_fallback(attempts: int, error_rate: float, fallback_rate: float) -> None:
    got = est.estimate(policy(attempts), window(), [("a/x", "b/y")] * 4)
    assert got["requests_estimated"] == 4
    assert got["error_rate"] == pytest.approx(error_rate, abs=1e-6), got
    assert got["fallback_rate"] == pytest.approx(fallback_rate, abs=1e-6), got
    assert got["latency_ms_p50"] is not None and got["latency_ms_mean"] is not None


def test_without_cuts_a_failure_falls_back_as_before() -> None:
    w = window()
    w["attempts"] = [[OK], [FAILED, B_OK], [FAILED, B_OK], [OK]]
    got = est.estimate(policy(1), w, [("a/x", "b/y")] * 4)
    assert (got["error_rate"], got["fallback_rate"]) == (0.0, 0.5), got
