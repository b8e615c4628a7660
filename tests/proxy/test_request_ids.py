"""Every HTTP response of the gateway carries `x-request-id` — models, health, metrics, the
admin API, key info, 404, 405, 413, refusals of the dashboard guard — not only chat and
embeddings: always a gateway id, with the client's own id in `x-client-request-id`."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "keys"))
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, metered_policy  # noqa: E402

from llmgw_kernel.proxy.app import GatewayApp  # noqa: E402

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROUTES = [  # (method, path, json body, headers, expected status)
    ("GET", "/v1/models", None, {}, 200),
    ("HEAD", "/v1/models", None, {}, 200),
    ("GET", "/models", None, {}, 200),
    ("GET", "/v1/models/gpt-4o-mini", None, {}, 200),
    ("GET", "/models/nope", None, {}, 404),
    ("GET", "/health", None, {}, 200),
    ("GET", "/health/ready", None, {}, 200),
    ("GET", "/health/live", None, {}, 200),
    ("GET", "/metrics", None, {}, 200),
    ("GET", "/v1/llmgw/key", None, {}, 404),
    ("GET", "/admin/virtual-keys", None, ADMIN, 200),
    ("GET", "/admin/virtual-keys", None, {}, 401),
    ("POST", "/admin/virtual-keys", {"name": ""}, ADMIN, 400),
    ("GET", "/admin/credentials", None, ADMIN, 200),
    ("GET", "/admin/nope", None, ADMIN, 404),
    ("GET", "/v1/nope", None, {}, 404),
    ("GET", "/nope", None, {}, 404),
    ("GET", "/v1/chat/completions", None, {}, 405),
    ("POST", "/v1/models", None, {}, 405),
    ("DELETE", "/health", None, {}, 405),
    ("POST", "/v1/chat/completions", CHAT, {}, 200),
    ("POST", "/chat/completions", {**CHAT, "model": "nope"}, {}, 404),
    ("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}, {}, 200),
    ("POST", "/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 5, "messages": []}, {}, 400),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": "x" * 70000}, {}, 413),
]
IDS = [f"{m} {p} {s}" for m, p, _, _, s in ROUTES]


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    g = KeyedGateway(
        tmp_path_factory.mktemp("ids"), metered_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN},
        args=("--no-dashboards",),
    )  # fmt: skip
    yield g
    g.terminate()


@pytest.mark.parametrize("method,path,body,headers,status", ROUTES, ids=IDS)
def test_every_route_carries_a_request_id(gw, method, path, body, headers, status):
    r = httpx.request(method, gw.url + path, json=body, headers=headers, timeout=20)
    assert r.status_code == status, r.text
    assert re.fullmatch(r"req_[0-9a-f]{24}", r.headers.get("x-request-id", "")), dict(r.headers)
    again = httpx.request(method, gw.url + path, json=body, headers=headers, timeout=20)
    assert again.headers["x-request-id"] != r.headers["x-request-id"]  # one id per response
    mine = httpx.request(method, gw.url + path, json=body, headers={**headers, "x-request-id": "trace-42"}, timeout=20)
    assert re.fullmatch(r"req_[0-9a-f]{24}", mine.headers["x-request-id"])  # always the gateway's, as on chat
    assert mine.headers["x-client-request-id"] == "trace-42"  # the client's own id comes back apart


def test_the_dashboard_guard_and_the_dashboards_carry_it_too():
    """Refusals of the dashboard guard, and whatever the dashboard mount answers."""

    async def mount(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html></html>"})

    mount.close = None  # type: ignore[attr-defined]

    async def run() -> list[httpx.Response]:
        out = []
        for guarded in (True, False):
            app = GatewayApp(None, mount, guarded=guarded)  # type: ignore[arg-type]  # neither path uses the gateway
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
                out.append(await client.get("/overview"))
        return out

    refused, served = asyncio.run(run())
    assert refused.status_code in (401, 403) and refused.headers["x-request-id"].startswith("req_")
    assert served.status_code == 200 and served.headers["x-request-id"].startswith("req_")


def test_a_request_the_server_cannot_parse_gets_one_too(gw):
    """httptools refuses the request line: the answer is still OpenAI-shaped and stamped."""
    import json
    import socket

    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and re.search(rb"x-request-id: req_[0-9a-f]{24}", head), raw
    assert json.loads(body)["error"]["code"] == "invalid_http_request"


def test_a_handler_failure_is_an_openai_500_with_an_id():
    """A bug in a non-pipeline handler (here: a gateway that was never started) is answered
    500 in OpenAI's format with an x-request-id, not uvicorn's plain-text 500."""

    async def run() -> httpx.Response:
        app = GatewayApp(object())  # type: ignore[arg-type]  # no keys, no snapshot: /v1/models fails
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return await client.get("/v1/models")

    r = asyncio.run(run())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert r.headers["x-request-id"].startswith("req_")
