"""Slow clients over real sockets: headers sent byte by byte (slowloris), connections that
send nothing, bodies that never complete or trickle in. The server closes each within its
read deadline (`--header-timeout`, `--body-timeout`), answers 408 in OpenAI's error format,
logs the refused body as a row, and keeps serving normal clients meanwhile."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, policy_for, wait_for_rows

sys.path.insert(0, str(Path(__file__).parents[1] / "keys"))
from keyed_gateway import ADMIN_TOKEN, KeyedGateway  # noqa: E402

HEADER_S = 1.0
BODY_S = 1.5
MARGIN_S = 3.0  # the machine is shared: closes may come this late, never much later
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    g = KeyedGateway(
        tmp_path_factory.mktemp("slow"), policy_for(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN},
        args=("--no-dashboards", "--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S)),
    )  # fmt: skip
    yield g
    g.terminate()


def connect(gw: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10)


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """(everything the server sent, seconds until it closed); raises if still open at limit_s."""
    t0, data = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - t0 < limit_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - t0
        if not chunk:
            return data, time.monotonic() - t0
        data += chunk
    raise AssertionError(f"connection still open after {limit_s} s; received {data[:200]!r}")


def error_of(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)["error"]


class Steady:
    """A normal client making requests back to back on its own thread; records each latency."""

    def __init__(self, gw: Gateway) -> None:
        self.gw, self.latencies, self.failures = gw, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Steady:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.gw.base_url, timeout=10) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post("/chat/completions", json=CHAT)
                    (self.latencies if r.status_code == 200 else self.failures).append(time.monotonic() - t0)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                time.sleep(0.05)


def test_slowloris_connections_are_closed_at_the_header_deadline(gw):
    n = 60
    socks = [connect(gw) for _ in range(n)]
    silent = [connect(gw) for _ in range(10)]  # connect and never send a byte
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + b"x-pad: " + b"a" * 200
    )
    closed_at: dict[int, float] = {}
    t0 = time.monotonic()
    with Steady(gw) as steady:
        for i in range(len(request)):  # one byte per connection every 0.1 s: the headers never end
            if len(closed_at) == n or time.monotonic() - t0 > HEADER_S + MARGIN_S:
                break
            for j, s in enumerate(socks):
                if j in closed_at:
                    continue
                try:
                    s.sendall(request[i : i + 1])
                except OSError:
                    closed_at[j] = time.monotonic() - t0
            time.sleep(0.1)
        outcomes = [read_until_closed(s, HEADER_S + MARGIN_S) for s in socks + silent]
    assert max(elapsed for _, elapsed in outcomes) < HEADER_S + MARGIN_S
    answered = [error_of(raw) for raw, _ in outcomes if raw]
    assert len(answered) >= n  # closes a writer races may lose the 408; the silent ones all get it
    for status, headers, error in answered:
        assert status == 408 and error["code"] == "request_header_timeout" and headers["connection"] == "close"
        assert headers["x-request-id"].startswith("req_")
    assert steady.failures == [] and len(steady.latencies) >= 5
    assert max(steady.latencies) < 2.0, max(steady.latencies)  # served all along, not after the closes
    for s in socks + silent:
        s.close()


def _body_request(path: str, declared: int, sent: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {ADMIN_TOKEN}\r\ncontent-length: {declared}\r\n\r\n").encode() + sent  # fmt: skip


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/admin/virtual-keys"])
def test_a_body_that_never_completes_gets_408(gw, path):
    with Steady(gw) as steady:
        s = connect(gw)
        s.sendall(_body_request(path, 500, b'{"model": "gpt-4o-mini", '))
        raw, elapsed = read_until_closed(s, BODY_S + MARGIN_S)
    s.close()
    status, headers, error = error_of(raw)
    assert status == 408 and BODY_S - 0.2 < elapsed < BODY_S + MARGIN_S
    assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"
    assert headers["connection"] == "close" and headers["x-request-id"]
    assert steady.failures == [] and steady.latencies


def test_a_trickling_body_is_cut_at_the_deadline_and_logged(gw):
    """1 byte every 0.1 s: never idle, never done. Deadlines are totals, not idle timeouts."""
    s = connect(gw)
    s.sendall(
        _body_request("/v1/chat/completions", 5000, b'{"model": "gpt-4o-mini", "metadata": {"probe": "trickle"}, ')
    )
    t0, raw = time.monotonic(), b""
    s.settimeout(0.1)
    while time.monotonic() - t0 < BODY_S + MARGIN_S and not raw:
        try:
            s.sendall(b" ")
            raw = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    rest, _ = read_until_closed(s, MARGIN_S)  # the 408's head and body may come in two reads
    s.close()
    status, headers, error = error_of(raw + rest)
    assert status == 408 and error["code"] == "request_timeout" and headers["x-request-id"].startswith("req_")
    rows = wait_for_rows(gw, "status = 408 AND endpoint = 'chat.completions'")
    assert rows and rows[-1]["error_type"] is not None


def test_a_body_answered_unread_is_closed_at_the_deadline(gw):
    """A route that answers without reading the body (GET /v1/models with a body that never
    ends) gets its answer, then the connection is closed at the body deadline."""
    s = connect(gw)
    s.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
    raw, elapsed = read_until_closed(s, BODY_S + MARGIN_S)
    s.close()
    assert raw.startswith(b"HTTP/1.1 200") and elapsed > BODY_S - 0.2


def test_slow_but_in_time_and_idle_keep_alive_are_served(gw):
    body = json.dumps(CHAT).encode()
    s = connect(gw)
    head = _body_request("/v1/chat/completions", len(body), b"")
    for part in (head[:10], head[10:], body[:10], body[10:20], body[20:]):  # over ~0.8 s: within both deadlines
        s.sendall(part)
        time.sleep(0.2)
    s.settimeout(10)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    time.sleep(HEADER_S + 1)  # idle between requests is the keep-alive timeout's business, not a header deadline
    s.sendall(head + body)
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    s.close()


def test_metrics_count_the_clients_cut_off(gw):
    """After the tests above (module order): /metrics counts each deadline that passed."""
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    counts = dict(re.findall(r'llmgw_read_deadlines_passed_total\{deadline="(\w+)"\} (\d+)', text.replace(".0", "")))
    assert int(counts.get("header", 0)) >= 70 and int(counts.get("body", 0)) >= 5, counts
