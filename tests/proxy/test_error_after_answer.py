"""An answer that was ready (its headers prepared, ``content-length`` among them) when logging its
row failed — the journal's disk full — is answered one well-formed 500: the error's own
``content-length`` only, never the answer's beside it (two made the response invalid HTTP:
httpx refuses "conflicting Content-Length headers", uvicorn "Response content shorter than
Content-Length"). The gateway runs in this process under a real ASGI ``send`` recorder, in front
of the fake OpenAI upstream; only the journal write is made to fail (ENOSPC), as a full disk does.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import orjson
import yaml
from conftest import UPSTREAM_KEY, policy_for

from llmgw_kernel.proxy.app import GatewayApp
from llmgw_kernel.proxy.runtime import Gateway


async def _post(app: GatewayApp, body: bytes) -> list[dict]:
    """One POST /v1/chat/completions through the ASGI app; every message it sent."""
    sent: list[dict] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
        "headers": [(b"host", b"gw"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_a_row_that_cannot_be_journaled_is_one_well_formed_500(upstream, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_API_KEY", UPSTREAM_KEY)
    policy_path = tmp_path / "live.yaml"
    policy_path.write_text(yaml.safe_dump(policy_for(upstream.base_url), sort_keys=False))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "disk full"}]})

    async def run() -> list[dict]:
        gw = Gateway(policy_path=policy_path, data_dir=tmp_path / "data")
        await gw.start()
        try:

            def disk_full(record: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(gw.writer, "append", disk_full)
            return await _post(GatewayApp(gw), body)
        finally:
            await gw.stop()

    sent = asyncio.run(run())
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1 and starts[0]["status"] == 500, sent
    lengths = [v for k, v in starts[0]["headers"] if k.lower() == b"content-length"]
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert lengths == [str(len(payload)).encode()], starts[0]["headers"]
    assert orjson.loads(payload)["error"]["code"] == "internal_error"
    assert any(k == b"x-request-id" for k, _ in starts[0]["headers"])
