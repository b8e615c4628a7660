"""Outside-style: replaying the live policy over its own log must forecast the errors that log shows.

docs/routing.md, "Streams and fallbacks": once the first event has been sent "neither a retry nor a
fallback can be made invisible ... the proxy ... logs the request with `status: 200` ...,
`outcome: upstream_error`". docs/routing.md, "Replay of routing": `error_rate` is the "mean of
P(every target of the plan fails)" and `fallback_rate` the share whose first target fails.
A stream cut after its first event is an error that no fallback can repair, so replaying the very
policy that produced it must not forecast 0% errors and 100% fallbacks.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import policy_for, wait_for_rows


def test_replay_of_live_policy_forecasts_mid_stream_cuts_as_errors(upstream, make_gateway) -> None:
    from llmgw_kernel import open_log, replay

    gw = make_gateway(policy_for(upstream.base_url))
    n = 12
    for i in range(n):  # route "stream-cut": stream-cut-2 first (dies after two events), gpt-4o second
        with httpx.stream(
            "POST",
            f"{gw.base_url}/chat/completions",
            json={"model": "stream-cut", "stream": True, "messages": [{"role": "user", "content": f"q{i}"}]},
            timeout=30,
        ) as r:
            assert r.status_code == 200
            r.read()
    rows = wait_for_rows(gw, "route = 'stream-cut'", n)
    assert len(rows) == n
    assert all(row["outcome"] == "upstream_error" for row in rows)  # live: every one failed, none fell back

    con = open_log(gw.data_dir)
    try:
        result = replay(str(gw.policy_path), con)
    finally:
        con.close()
    est = result.summary["routing"]["estimates"]
    assert result.summary["requests"] == n
    # the same policy over its own traffic: the failures it logged must be forecast as failures
    assert est["error_rate"] == pytest.approx(1.0, abs=0.05), est
    assert est["fallback_rate"] == pytest.approx(0.0, abs=0.05), est
