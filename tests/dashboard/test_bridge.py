"""The dashboard bridge, served by uvicorn, in front of a real aiohttp server as "Panel"."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from yarl import URL

from llmgw_kernel.dashboard.panel_thread import websocket_origins
from llmgw_kernel.dashboard_bridge import DashboardBridge


class EchoBackend:
    """Stands in for Panel: echoes requests, streams, and runs an echoing websocket."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.starts = 0
        self.stopped = False
        self.seen_ws_headers: dict[str, str] = {}
        self.alive = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        self.starts += 1
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("no panel today")
        app = web.Application()
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/cookie", self._cookie)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.alive = True
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.stopped = True
        self.alive = False
        if self._runner is not None:
            await self._runner.cleanup()

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {"method": request.method, "path_qs": request.raw_path, "body": body.decode(),
             "host": request.headers.get("Host"), "cookie": request.headers.get("Cookie")},
            headers={"X-Echo": "1"},
        )  # fmt: skip

    async def _cookie(self, request: web.Request) -> web.Response:
        response = web.Response(text="set")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(3):
            await response.write(f"chunk{i};".encode())
            await asyncio.sleep(0.2)
        await response.write_eof()
        return response

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        self.seen_ws_headers = dict(request.headers)
        ws = web.WebSocketResponse(protocols=("bokeh",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close":
                    await ws.close(code=4001)
                    break
                await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(scenario, backend: EchoBackend | None = None, **bridge_kwargs):
    """Serve a bridge over ``backend`` with uvicorn and run ``scenario(client, base, bridge)``."""
    backend = backend or EchoBackend()

    async def main():
        port = _free_port()
        bridge = DashboardBridge(data_dir="unused", public_host="127.0.0.1", public_port=port,
                                 backend=backend, **bridge_kwargs)  # fmt: skip
        config = uvicorn.Config(bridge, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                ws="websockets-sansio", server_header=False, date_header=False)  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with aiohttp.ClientSession() as client:
                return await scenario(client, f"http://127.0.0.1:{port}", bridge)
        finally:
            server.should_exit = True
            await task
            await bridge.close()

    return asyncio.run(main())


def test_starts_lazily_and_forwards_any_method_with_path_query_body_and_host():
    backend = EchoBackend()

    async def scenario(client, base, bridge):
        assert backend.starts == 0
        seen = []
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            url = URL(f"{base}/some/p%20ath?x=1&y=%2F", encoded=True)  # sent exactly as written
            async with client.request(method, url, data=b"payload") as r:
                assert r.status == 200 and r.headers["X-Echo"] == "1"
                assert "Server" not in r.headers
                seen.append(await r.json())
        async with client.head(f"{base}/head") as r:
            assert r.status == 200 and await r.read() == b""
        return seen

    seen = run(scenario, backend)
    assert backend.starts == 1 and backend.stopped
    assert [s["method"] for s in seen] == ["GET", "POST", "PUT", "DELETE", "PATCH"], seen
    assert all(s["path_qs"] == "/some/p%20ath?x=1&y=%2F" and s["body"] == "payload" for s in seen), seen
    assert seen[0]["host"].startswith("127.0.0.1:")  # the public address, not the internal one


def test_streams_the_response_as_it_arrives():
    async def scenario(client, base, bridge):
        arrivals = []
        async with client.get(f"{base}/stream") as r:
            async for chunk in r.content.iter_any():
                arrivals.append((asyncio.get_running_loop().time(), chunk))
        return arrivals

    arrivals = run(scenario)
    assert b"".join(c for _, c in arrivals) == b"chunk0;chunk1;chunk2;"
    assert arrivals[-1][0] - arrivals[0][0] > 0.3  # not buffered until the end


def test_cookies_pass_through_but_are_not_shared_between_clients():
    async def scenario(client, base, bridge):
        async with client.get(f"{base}/cookie") as r:
            assert sorted(r.headers.getall("Set-Cookie")) == ["a=1; Path=/", "b=2; Path=/"]
        async with aiohttp.ClientSession() as other, other.get(f"{base}/echo") as r:
            return (await r.json())["cookie"]

    assert run(scenario) is None


def test_websocket_text_binary_subprotocol_origin_and_close_code():
    backend = EchoBackend()

    async def scenario(client, base, bridge):
        async with client.ws_connect(f"{base}/ws", protocols=("bokeh", "token123"),
                                     origin="http://localhost:1234") as ws:  # fmt: skip
            assert ws.protocol == "bokeh"
            await ws.send_str("hello")
            assert (await ws.receive()).data == "echo:hello"
            await ws.send_bytes(b"\x00\x01\x02")
            assert (await ws.receive()).data == b"\x02\x01\x00"
            await ws.send_str("close")
            msg = await ws.receive()
            return msg.type, ws.close_code

    kind, code = run(scenario, backend)
    assert kind == aiohttp.WSMsgType.CLOSE and code == 4001
    assert backend.seen_ws_headers["Origin"] == "http://localhost:1234"
    assert backend.seen_ws_headers["Sec-WebSocket-Protocol"] == "bokeh,token123"


def test_client_closing_the_websocket_closes_upstream():
    async def scenario(client, base, bridge):
        ws = await client.ws_connect(f"{base}/ws", protocols=("bokeh",))
        await ws.send_str("x")
        await ws.receive()
        await ws.close()
        for _ in range(100):  # the backend's handler returns when its side is closed
            if not bridge._backend._runner.server.connections:
                return True
            await asyncio.sleep(0.02)
        return False

    assert run(scenario)


def test_a_server_that_died_is_started_again():
    backend = EchoBackend()

    async def scenario(client, base, bridge):
        async with client.get(f"{base}/a") as r:
            assert r.status == 200
        await backend.stop()  # "the child process exited"
        async with client.get(f"{base}/b") as r:
            return r.status, backend.starts

    assert run(scenario, backend) == (200, 2)


def test_start_failure_answers_503_with_the_reason():
    async def scenario(client, base, bridge):
        async with client.get(f"{base}/") as r:
            return r.status, await r.text(), r.headers.get("Retry-After")

    status, text, retry = run(scenario, EchoBackend(fail=True))
    assert status == 503 and "no panel today" in text and retry == "5"


def test_requests_wait_for_start_but_not_forever():
    async def scenario(client, base, bridge):
        async with client.get(f"{base}/") as r:
            return r.status, await r.text()

    status, text = run(scenario, EchoBackend(delay_s=0.2), start_timeout_s=5)
    assert status == 200
    status, text = run(scenario, EchoBackend(delay_s=3), start_timeout_s=0.3)
    assert status == 503 and "still starting" in text


def test_a_browser_gets_a_loading_page_at_once_while_panel_starts():
    """The first page load used to show a blank tab until Panel listened (7-12 s)."""
    html = {"Accept": "text/html,application/xhtml+xml"}

    async def scenario(client, base, bridge):
        t0 = time.monotonic()
        async with client.get(f"{base}/cost?team=a", headers=html) as r:
            first = (r.status, await r.text(), r.headers.get("x-llmgw-dashboard"), time.monotonic() - t0)
        async with client.get(f"{base}/cost?team=a") as r:  # not a browser: waits for Panel
            waited = (r.status, await r.json())
        async with client.get(f"{base}/cost?team=a", headers=html) as r:  # Panel listens: the page
            then = (r.status, await r.json(), r.headers.get("x-llmgw-dashboard"))
        return first, waited, then

    backend = EchoBackend(delay_s=2)
    first, waited, then = run(scenario, backend)
    status, body, marker, took = first
    assert status == 200 and marker == "starting" and took < 1.0
    assert 'http-equiv="refresh"' in body and "loading the dashboards" in body
    assert waited[0] == 200 and waited[1]["path_qs"] == "/cost?team=a"
    assert then[0] == 200 and then[1]["path_qs"] == "/cost?team=a" and then[2] is None
    assert backend.starts == 1


@pytest.mark.parametrize(
    ("host", "port", "extra", "expected"),
    [
        ("127.0.0.1", 8000, None, ["127.0.0.1:8000", "localhost:8000"]),
        ("localhost", 80, None, ["localhost:80", "127.0.0.1:80"]),
        ("gw.example.com", 443, None, ["gw.example.com:443"]),
        ("10.1.2.3", 8000, "dash.example.com, *, dash2:9", ["10.1.2.3:8000", "dash.example.com", "dash2:9"]),
        ("::1", 8000, None, ["localhost:8000", "127.0.0.1:8000"]),
    ],
)
def test_websocket_origins_never_allow_everything(host, port, extra, expected):
    assert websocket_origins(host, port, extra) == expected


def test_wildcard_host_allows_the_machine_names():
    origins = websocket_origins("0.0.0.0", 8000)
    assert {"localhost:8000", "127.0.0.1:8000", f"{socket.gethostname()}:8000"} <= set(origins)
    assert "*" not in origins


def test_the_proxy_process_never_imports_panel():
    """What the proxy imports to bridge dashboards pulls in none of the dashboard stack."""
    import subprocess
    import sys

    code = (
        "import sys, llmgw_kernel.dashboard_bridge, llmgw_kernel.dashboard.panel_process, "
        "llmgw_kernel.dashboard.panel_thread, llmgw_kernel.dashboard; "
        "print(','.join(m for m in ('panel', 'bokeh', 'tornado', 'pandas', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dashboard_public_names():
    import llmgw_kernel.dashboard as dashboard

    assert sorted(dashboard.__all__) == [
        "DEFAULT_WINDOW", "ERROR_OUTCOMES", "Headline", "Overview", "OverviewStore", "WINDOWS", "Window",
    ]  # fmt: skip
    assert all(getattr(dashboard, name) is not None for name in dashboard.__all__)
