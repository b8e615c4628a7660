"""Structured logs (issue 14, item 2): `llmgw serve --log-format json` (or LLMGW_LOG_FORMAT=json)
writes every event of the server as one JSON object a line, and one `request` event per finished
request with its ids, route, target, status, latency and policy version — never a body, a
provider key or a client's key. The default stays text lines without per-request events."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from conftest import UPSTREAM_KEY, wait_for_rows

SECRET_PROMPT = "my card is 4111 1111 1111 1111 and my name is Ada"


def _requests(gw) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-client-secret-123", max_retries=0, timeout=20)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": SECRET_PROMPT}])
    for _ in client.chat.completions.create(model="split", messages=[{"role": "user", "content": "s"}], stream=True):
        pass
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-route", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="broken-500", messages=[{"role": "user", "content": "x"}])
    r = httpx.post(
        f"{gw.base_url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    wait_for_rows(gw, "true", 5)


def test_json_lines_with_one_request_event_each_and_no_secrets(make_gateway) -> None:
    gw = make_gateway(env={"LLMGW_LOG_FORMAT": "json"})
    _requests(gw)
    assert gw.terminate() == 0
    text = gw.server_log()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert all({"ts", "level", "logger", "event"} <= set(e) for e in lines)
    requests = [e for e in lines if e["event"] == "request"]
    assert len(requests) == 5
    by_route = {e["route"]: e for e in requests}
    ok = by_route["gpt-4o-mini"]
    assert (ok["status"], ok["outcome"], ok["target"], ok["attempts"]) == (200, "ok", "local/gpt-4o-mini", 1)
    assert ok["request_id"].startswith("req_") and ok["policy_version"] and ok["latency_ms"] > 0
    assert ok["key_id"].startswith("sha256:")  # the fingerprint, never the key
    assert by_route["split"]["stream"] is True and by_route["split"]["ttft_ms"] is not None
    assert (by_route["no-such-route"]["status"], by_route["no-such-route"]["error_type"]) == (404, "model_not_found")
    assert by_route["broken-500"]["status"] == 500
    assert any(e["status"] == 400 for e in requests)
    for secret in (SECRET_PROMPT, "4111", "sk-client-secret-123", UPSTREAM_KEY):
        assert secret not in text


def test_text_stays_the_default_without_request_events(make_gateway) -> None:
    gw = make_gateway()
    _requests(gw)
    assert gw.terminate() == 0
    text = gw.server_log()
    assert not any(line.startswith("{") for line in text.splitlines())
    assert '"event": "request"' not in text and "llmgw.access" not in text
