"""A fake Anthropic Messages API (``POST /v1/messages``) over real HTTP, strict like the real one.

It rejects what Anthropic rejects: a missing ``x-api-key`` (401 authentication_error; a wrong
one too, but that is a credentials problem, not a malformed request), a missing
``anthropic-version`` header, a missing ``max_tokens``, a ``system`` role inside
``messages``, OpenAI-style fields (``tools[].function``, ``tool_choice`` strings, ``stop``),
a ``tool_result`` without a preceding ``tool_use`` of that id, a tool id outside
``^[a-zA-Z0-9_-]+$``, temperature above 1, and any
other path. Stricter than Anthropic, it refuses an ``Authorization`` header (the gateway must
send ``x-api-key``). Every malformed request is recorded in ``.invalid`` (the gateway should
send none). Behaviour by ``model``:

- ``claude-tool``: with tools and no tool result yet, calls the first tool
  (``{"city": "Paris"}``, or ``{}`` when its schema has no properties); after a tool result,
  answers with the result's text; ``claude-tool-whole`` does the same, streaming the call's
  whole ``input`` in ``content_block_start`` and no ``input_json_delta`` (as some
  Anthropic-compatible servers do);
- ``claude-overloaded``: HTTP 529 ``overloaded_error``;
- ``claude-rate-limited``: HTTP 429 ``rate_limit_error`` with ``retry-after``;
- ``claude-echo-key``: a 400 whose message quotes the key it received (a careless upstream:
  the gateway must scrub it);
- ``claude-stream-ends``: a stream whose HTTP response ends cleanly after two text deltas,
  without ``message_delta`` and ``message_stop`` (an answer cut short by a proxy or a
  ``Connection: close`` upstream; the JSON answer is whole);
- ``claude-too-long``: the 400 ``invalid_request_error`` Anthropic answers a prompt that does
  not fit (``prompt is too long: ...``);
- anything else: echoes the last user text.

Streams follow the documented event sequence (message_start, content_block_start/delta/stop,
message_delta with usage, message_stop), tool input as ``input_json_delta`` fragments (an empty
input as one delta of ``""``, as Anthropic sends it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from fake_http import FakeServer

USAGE_IN = 21
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")  # what Anthropic accepts as a tool_use id


class Invalid(Exception):
    def __init__(self, message: str, status: int = 400, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.type = status, type_


def _err(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return web.json_response(body, status=status, headers=headers)


class FakeAnthropic(FakeServer):
    name = "fake-anthropic"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{path:.*}", self.messages)

    def validate(self, request: web.Request, body: dict[str, Any]) -> None:
        if request.path != "/v1/messages":
            raise Invalid(f"Not found: {request.path}", 404, "not_found_error")
        if "x-api-key" not in request.headers:
            raise Invalid("x-api-key header is required", 401, "authentication_error")
        if "authorization" in {k.lower() for k in request.headers}:
            raise Invalid("unexpected Authorization header")
        if not request.headers.get("anthropic-version"):
            raise Invalid("anthropic-version: header is required")
        if not isinstance(body.get("max_tokens"), int):
            raise Invalid("max_tokens: Field required")
        if not isinstance(body.get("model"), str):
            raise Invalid("model: Field required")
        if "stop" in body or "n" in body or "tool_choice" in body and not isinstance(body["tool_choice"], dict):
            raise Invalid("extra inputs are not permitted")
        if (body.get("temperature") or 0) > 1:
            raise Invalid("temperature: must be <= 1")
        seen_tool_ids: set[str] = set()
        for i, msg in enumerate(body.get("messages") or []):
            if msg.get("role") not in ("user", "assistant"):
                raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = msg.get("content")
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            for j, block in enumerate(blocks):
                ref = block.get("id") if block.get("type") == "tool_use" else block.get("tool_use_id")
                if block.get("type") in ("tool_use", "tool_result") and not TOOL_ID.fullmatch(str(ref)):
                    field = "tool_use.id" if block.get("type") == "tool_use" else "tool_result.tool_use_id"
                    raise Invalid(f"messages.{i}.content.{j}.{field}: String should match pattern '{TOOL_ID.pattern}'")
                if block.get("type") == "tool_use":
                    seen_tool_ids.add(block.get("id"))
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in seen_tool_ids:
                    raise Invalid("tool_result without a matching tool_use")
                if block.get("type") not in ("text", "image", "tool_use", "tool_result"):
                    raise Invalid(f"unknown content block {block.get('type')}")
        for tool in body.get("tools") or []:
            if "function" in tool or "input_schema" not in tool or "name" not in tool:
                raise Invalid("tools: each tool needs name and input_schema")
        if not body.get("messages"):
            raise Invalid("messages: at least one message is required")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        try:
            self.validate(request, body)
        except Invalid as exc:
            self.invalid.append(str(exc))
            return _err(exc.status, exc.type, str(exc))
        if request.headers["x-api-key"] != self.api_key:
            return _err(401, "authentication_error", "invalid x-api-key")
        if body["model"] == "claude-overloaded":
            return _err(529, "overloaded_error", "Overloaded")
        if body["model"] == "claude-echo-key":
            return _err(
                400, "invalid_request_error", f"the fake quotes what it received: {request.headers['x-api-key']}"
            )
        if body["model"] == "claude-too-long":
            return _err(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
        if body["model"] == "claude-rate-limited":
            message = "This request would exceed the rate limit for your organization of 50 requests per minute."
            return _err(429, "rate_limit_error", message, {"retry-after": "2"})
        blocks, stop = self._answer(body)
        usage = {
            "input_tokens": USAGE_IN,
            "output_tokens": 9,
            "cache_read_input_tokens": 4,
            "cache_creation_input_tokens": 0,
        }
        if not body.get("stream"):
            return web.json_response({
                "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
                "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage,
            })  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        start_usage = {
            "input_tokens": USAGE_IN,
            "output_tokens": 1,
            "cache_read_input_tokens": 4,
            "cache_creation_input_tokens": 0,
        }
        await event("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})  # fmt: skip
        await event("ping", {"type": "ping"})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                await event(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                )
                words = block["text"].split(" ")
                for j, word in enumerate(words):
                    if j == 2 and body["model"] == "claude-stream-ends":
                        return resp  # the response ends cleanly here: no message_delta, no message_stop
                    piece = word + (" " if j < len(words) - 1 else "")
                    await event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}},
                    )
            elif body["model"] == "claude-tool-whole":  # the whole input at the start, no deltas
                await event("content_block_start", {"type": "content_block_start", "index": i, "content_block": block})
            else:
                await event("content_block_start", {"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})  # fmt: skip
                raw = json.dumps(block["input"]) if block["input"] else ""  # no input: one empty delta
                for k in range(0, max(len(raw), 1), 7):
                    await event("content_block_delta", {"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": raw[k : k + 7]}})  # fmt: skip
            await event("content_block_stop", {"type": "content_block_stop", "index": i})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        return resp

    def _answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        last = body["messages"][-1]
        content = last["content"]
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        tools = body.get("tools") or []
        forced = (body.get("tool_choice") or {}).get("type") == "tool"
        if tools and (forced or (body["model"] in ("claude-tool", "claude-tool-whole") and not results)):
            tool = next(t for t in tools if t["name"] == body["tool_choice"]["name"]) if forced else tools[0]
            args = {"city": "Paris"} if (tool["input_schema"].get("properties") or {}) else {}
            return [{"type": "tool_use", "id": "toolu_01", "name": tool["name"], "input": args}], "tool_use"
        if results:
            return [{"type": "text", "text": f"The tool said: {results[0]['content']}"}], "end_turn"
        text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        system = body.get("system")
        prefix = "(with system) " if system else ""
        return [{"type": "text", "text": f"{prefix}Claude heard: {text}"}], "end_turn"
