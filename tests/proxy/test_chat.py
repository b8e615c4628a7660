"""Chat completions through a real `llmgw serve`, driven by the official openai SDK: the gateway's
own behaviour in front of an OpenAI-format upstream (headers, logging, pass-through, models,
health, metrics). What every provider kind must do, openai included, is in
tests/providers/test_conformance.py."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from conftest import UPSTREAM_KEY, wait_for_rows


def client(gw, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, **kw)


def test_sync_json_and_usage(gateway, upstream):
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    completion = resp.parse()
    assert completion.choices[0].message.content == "Hello from the fake upstream: hi"
    assert completion.usage.total_tokens == 18
    assert resp.headers["x-llmgw-target"] == "local/gpt-4o-mini"
    assert resp.headers["x-llmgw-policy-version"].startswith("p-")
    assert resp.headers["x-request-id"].startswith("req_")
    sent = upstream.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["body"]["model"] == "gpt-4o-mini"
    rid = resp.headers["x-request-id"]
    row = wait_for_rows(gateway, f"request_id = '{rid}'")[0]
    assert (row["status"], row["outcome"], row["target"], row["prompt_tokens"], row["completion_tokens"]) == (
        200, "ok", "local/gpt-4o-mini", 11, 7,
    )  # fmt: skip
    assert row["policy_version"] == resp.headers["x-llmgw-policy-version"]


def test_async_client(gateway):
    async def go():
        c = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
        results = await asyncio.gather(
            *[
                c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}])
                for i in range(20)
            ]
        )
        await c.close()
        return results

    results = asyncio.run(go())
    assert sorted(r.choices[0].message.content for r in results) == sorted(
        f"Hello from the fake upstream: n{i}" for i in range(20)
    )


def test_stream_without_include_usage_hides_the_gateways_usage_chunk(gateway, upstream):
    with httpx.stream(
        "POST", f"{gateway.base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ) as r:  # fmt: skip
        assert r.headers["content-type"].startswith("text/event-stream")
        rid = r.headers["x-request-id"]
        body = r.read().decode()
    assert '"usage"' not in body  # the client did not ask for it
    assert body.rstrip().endswith("data: [DONE]")
    # ...but the gateway asked upstream for it, and logged it
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    row = wait_for_rows(gateway, f"request_id = '{rid}'")[0]
    assert row["stream"] and row["total_tokens"] == 18 and row["ttft_ms"] > 0
    assert row["response_body"] is not None and "fake upstream" in row["response_body"]


def test_every_field_passes_through_untouched(gateway, upstream):
    fields = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "top_logprobs": 2,
        "n": 2,
        "seed": 42,
        "temperature": 0.3,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "user": "u-1",
        "some_future_param": {"nested": [1, 2, 3]},
    }
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
    ]  # fmt: skip
    r = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages, "metadata": {"team": "a"}, **fields},
        headers={"x-llmgw-metadata": '{"feature": "search"}', "x-llmgw-cache": "no-store"},
    )
    assert r.status_code == 200, r.text
    sent = upstream.requests[-1]
    assert sent["body"] == {"model": "gpt-4o-mini", "messages": messages, **fields}  # metadata consumed
    assert not [h for h in sent["headers"] if h.lower().startswith("x-llmgw")]
    row = wait_for_rows(gateway, f"request_id = '{r.headers['x-llmgw-request-id']}'")[0]
    import json

    assert json.loads(row["metadata"]) == {"team": "a", "feature": "search"}
    assert len(r.json()["choices"]) == 2


def test_client_request_id_is_kept_and_x_request_id_is_the_row(gateway):
    """x-request-id is the log row's request_id (issue 10 item 5); the client's own id is
    echoed in x-client-request-id and kept in client_request_id."""
    r = httpx.post(
        f"{gateway.base_url}/chat/completions", headers={"x-request-id": "my-trace-123"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    )  # fmt: skip
    assert r.headers["x-request-id"] == r.headers["x-llmgw-request-id"]
    assert r.headers["x-request-id"].startswith("req_")
    assert r.headers["x-client-request-id"] == "my-trace-123"
    row = wait_for_rows(gateway, "client_request_id = 'my-trace-123'")[0]
    assert row["request_id"] == r.headers["x-request-id"]


def test_models_lists_usable_routes(gateway):
    ids = {m.id for m in client(gateway).models.list()}
    assert {"gpt-4o-mini", "split", "demo"} <= ids
    assert "no-key" not in ids  # its key variable is unset
    assert client(gateway).models.retrieve("demo").id == "demo"
    with pytest.raises(openai.NotFoundError):
        client(gateway).models.retrieve("no-key")


def test_embeddings(gateway, upstream):
    e = client(gateway).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.data) == 2 and e.usage.total_tokens == 3
    assert upstream.requests[-1]["path"] == "/v1/embeddings"
    d = client(gateway).embeddings.create(model="demo", input="hello")
    assert len(d.data[0].embedding) == 384


def test_demo_route_streams_offline(gateway):
    chunks = list(client(gateway).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hello gateway"}], stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    assert "hello gateway" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("path", ["/health", "/health/live"])
def test_health(gateway, path):
    r = httpx.get(gateway.url + path)
    assert r.status_code == 200
    if path == "/health":
        assert r.json()["routes"]["no-key"].startswith("unavailable")


def test_metrics(gateway):
    client(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "m"}])
    text = httpx.get(gateway.url + "/metrics").text
    assert 'llmgw_requests_total{model="gpt-4o-mini",route="gpt-4o-mini",status="200"}' in text
    assert "llmgw_request_duration_seconds_bucket" in text
    assert 'llmgw_tokens_total{kind="prompt",model="gpt-4o-mini",route="gpt-4o-mini"}' in text
    assert "llmgw_time_to_first_token_seconds" in text and "llmgw_upstream_errors_total" in text
