"""Streams whose upstream dies: before the first event → fallback; after → an error event."""

from __future__ import annotations

import json

import httpx
from conftest import wait_for_rows

MSG = [{"role": "user", "content": "x"}]


def _stream(gw, model: str, rid: str) -> tuple[httpx.Response, list[str]]:
    with httpx.stream(
        "POST", f"{gw.base_url}/chat/completions", headers={"x-request-id": rid},
        json={"model": model, "messages": MSG, "stream": True},
    ) as r:  # fmt: skip
        return r, [line for line in r.iter_lines() if line]


def test_stream_that_dies_before_its_first_event_falls_back(gateway):
    r, lines = _stream(gateway, "stream-fallback", "sf-1")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "other/gpt-4o"
    assert lines[-1] == "data: [DONE]"
    row = wait_for_rows(gateway, "client_request_id = 'sf-1'")[0]
    assert row["outcome"] == "ok" and [a["target"] for a in row["attempts"]] == ["local/stream-cut-0", "other/gpt-4o"]
    assert row["attempts"][0]["error"].startswith("connection")


def test_stream_cut_after_first_byte_ends_with_an_error_event(gateway):
    r, lines = _stream(gateway, "stream-cut", "sc-1")
    assert r.status_code == 200 and r.headers["x-llmgw-target"] == "local/stream-cut-2"
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert events[-1]["error"]["code"] == "upstream_unreachable"
    assert "data: [DONE]" not in lines  # the stream did not finish: no clean end marker
    assert any(e.get("choices") for e in events[:-1])  # the content sent before the cut
    row = wait_for_rows(gateway, "client_request_id = 'sc-1'")[0]
    assert row["outcome"] == "upstream_error" and row["status"] == 200
    assert "after first byte" in row["attempts"][-1]["error"]
