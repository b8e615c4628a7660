"""Every request gets a cost — streams included, even when the provider sends no usage."""

from __future__ import annotations

import openai
from conftest import Gateway, policy_for, wait_for_rows


def test_streams_are_costed_from_their_usage_or_counted_and_marked(upstream, tmp_path):
    base = policy_for(upstream.base_url)
    policy = {
        **base,
        "providers": {
            **base["providers"],
            "mute": {
                "kind": "openai",
                "base_url": upstream.base_url,
                "api_key_env": "LOCAL_API_KEY",
                "stream_usage": False,
            },
        },  # fmt: skip
        "routes": {
            "priced": {"targets": [{"provider": "local", "model": "gpt-4o-mini"}]},
            "no-usage": {"targets": [{"provider": "mute", "model": "gpt-4o-mini"}]},
        },
        "pricing": {"gpt-4o-mini": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
    }
    gw = Gateway(tmp_path, policy)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key="sk-any", max_retries=0)
        ids = {}
        for route in ("priced", "no-usage"):
            with client.chat.completions.with_streaming_response.create(
                model=route, messages=[{"role": "user", "content": "Tell me about the sea, please."}], stream=True
            ) as resp:
                ids[route] = resp.headers["x-llmgw-request-id"]
                chunks = list(resp.parse())
            assert all(c.usage is None for c in chunks)  # the client did not ask for usage
        rows = {r["request_id"]: r for r in wait_for_rows(gw, "stream", n=2)}
        priced, counted = rows[ids["priced"]], rows[ids["no-usage"]]
        assert priced["usage_source"] == "upstream" and (priced["prompt_tokens"], priced["completion_tokens"]) == (
            11,
            7,
        )
        assert priced["cost_usd"] == (11 * 1.0 + 7 * 2.0) / 1e6
        assert counted["usage_source"] == "estimated"
        assert counted["prompt_tokens"] > 5 and counted["completion_tokens"] > 5
        expected = (counted["prompt_tokens"] * 1.0 + counted["completion_tokens"] * 2.0) / 1e6
        assert abs(counted["cost_usd"] - expected) < 1e-12
    finally:
        gw.terminate()
