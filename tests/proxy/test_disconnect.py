"""A client that leaves cancels its upstream call, and the log says so."""

from __future__ import annotations

import socket
import time

import httpx
from conftest import wait_for_rows


def test_stream_disconnect_cancels_upstream(gateway, upstream):
    before = upstream.cancelled
    with httpx.stream(
        "POST", f"{gateway.base_url}/chat/completions", headers={"x-request-id": "leaver-stream"},
        json={"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ) as r:  # fmt: skip
        it = r.iter_lines()
        got = [next(it) for _ in range(3)]
        assert got[0].startswith("data: ")
    # the stream would run 10 s more; the upstream must notice well before that
    deadline = time.monotonic() + 5
    while upstream.cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.cancelled == before + 1
    row = wait_for_rows(gateway, "client_request_id = 'leaver-stream'")[0]
    assert row["outcome"] == "abandoned" and row["status"] == 499
    assert row["latency_ms"] < 5000


def test_json_disconnect_is_logged_as_abandoned(gateway, upstream):
    body = b'{"model": "hang", "messages": [{"role": "user", "content": "x"}]}'
    before = upstream.counts["hang"]
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-request-id: leaver-json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        deadline = time.monotonic() + 60  # leave once the request is in flight (the upstream has it)
        while upstream.counts["hang"] == before:
            assert time.monotonic() < deadline, "the request never reached the upstream"
            time.sleep(0.01)
    row = wait_for_rows(gateway, "client_request_id = 'leaver-json'")[0]
    assert row["outcome"] == "abandoned"
    assert row["latency_ms"] < 1400  # before the 1.5 s upstream timeout: we did not wait for it
    assert httpx.get(gateway.url + "/health").status_code == 200
