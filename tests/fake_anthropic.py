"""A fake Anthropic Messages API (``POST /v1/messages``) over real HTTP, strict like the real one.

It rejects what Anthropic rejects: a missing/wrong ``x-api-key`` (401 authentication_error),
a missing ``anthropic-version`` header, a missing ``max_tokens``, a ``system`` role inside
``messages``, OpenAI-style fields (``tools[].function``, ``tool_choice`` strings,
``stop``), a ``tool_result`` without a preceding ``tool_use`` of that id, and temperature
above 1. Behaviour by ``model``:

- ``claude-tool``: with tools and no tool result yet, calls the first tool
  (``{"city": "Paris"}``); after a tool result, answers with the result's text;
- ``claude-overloaded``: HTTP 529 ``overloaded_error``;
- anything else: echoes the last user text.

Streams follow the documented event sequence (message_start, content_block_start/delta/stop,
message_delta with usage, message_stop), tool input as ``input_json_delta`` fragments.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

USAGE_IN = 21


def _err(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": type_, "message": message}}, status=status)


class FakeAnthropic:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def start(self) -> FakeAnthropic:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True, name="fake-anthropic").start()
        ready.wait(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def validate(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return _err(401, "authentication_error", "invalid x-api-key")
        if "authorization" in {k.lower() for k in request.headers}:
            return _err(400, "invalid_request_error", "unexpected Authorization header")
        if not request.headers.get("anthropic-version"):
            return _err(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body.get("max_tokens"), int):
            return _err(400, "invalid_request_error", "max_tokens: Field required")
        if not isinstance(body.get("model"), str):
            return _err(400, "invalid_request_error", "model: Field required")
        if "stop" in body or "n" in body or "tool_choice" in body and not isinstance(body["tool_choice"], dict):
            return _err(400, "invalid_request_error", "extra inputs are not permitted")
        if (body.get("temperature") or 0) > 1:
            return _err(400, "invalid_request_error", "temperature: must be <= 1")
        seen_tool_ids: set[str] = set()
        for i, msg in enumerate(body.get("messages") or []):
            if msg.get("role") not in ("user", "assistant"):
                return _err(400, "invalid_request_error", f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = msg.get("content")
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            for block in blocks:
                if block.get("type") == "tool_use":
                    seen_tool_ids.add(block.get("id"))
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in seen_tool_ids:
                    return _err(400, "invalid_request_error", "tool_result without a matching tool_use")
                if block.get("type") not in ("text", "image", "tool_use", "tool_result"):
                    return _err(400, "invalid_request_error", f"unknown content block {block.get('type')}")
        for tool in body.get("tools") or []:
            if "function" in tool or "input_schema" not in tool or "name" not in tool:
                return _err(400, "invalid_request_error", "tools: each tool needs name and input_schema")
        if not body.get("messages"):
            return _err(400, "invalid_request_error", "messages: at least one message is required")
        return None

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if (invalid := self.validate(request, body)) is not None:
            return invalid
        if body["model"] == "claude-overloaded":
            return _err(529, "overloaded_error", "Overloaded")
        blocks, stop = self._answer(body)
        usage = {"input_tokens": USAGE_IN, "output_tokens": 9, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}
        if not body.get("stream"):
            return web.json_response({
                "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
                "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage,
            })  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        start_usage = {"input_tokens": USAGE_IN, "output_tokens": 1, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}
        await event("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})  # fmt: skip
        await event("ping", {"type": "ping"})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                await event("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                words = block["text"].split(" ")
                for j, word in enumerate(words):
                    piece = word + (" " if j < len(words) - 1 else "")
                    await event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}})
            else:
                await event("content_block_start", {"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})  # fmt: skip
                raw = json.dumps(block["input"])
                for k in range(0, len(raw), 7):
                    await event("content_block_delta", {"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": raw[k : k + 7]}})  # fmt: skip
            await event("content_block_stop", {"type": "content_block_stop", "index": i})
        await event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 9}})
        await event("message_stop", {"type": "message_stop"})
        return resp

    def _answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        last = body["messages"][-1]
        content = last["content"]
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        tools = body.get("tools") or []
        forced = (body.get("tool_choice") or {}).get("type") == "tool"
        if tools and (forced or (body["model"] == "claude-tool" and not results)):
            name = body["tool_choice"]["name"] if forced else tools[0]["name"]
            return [{"type": "tool_use", "id": "toolu_01", "name": name, "input": {"city": "Paris"}}], "tool_use"
        if results:
            return [{"type": "text", "text": f"The tool said: {results[0]['content']}"}], "end_turn"
        text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        system = body.get("system")
        prefix = "(with system) " if system else ""
        return [{"type": "text", "text": f"{prefix}Claude heard: {text}"}], "end_turn"
