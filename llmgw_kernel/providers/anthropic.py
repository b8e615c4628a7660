"""``kind: anthropic`` — the Messages API (``POST {base_url}/v1/messages``).

OpenAI → Anthropic: system/developer messages become top-level ``system``; content parts
(text, image URL or base64 data URL) become content blocks; assistant ``tool_calls`` become
``tool_use`` blocks and ``tool`` messages ``tool_result`` blocks (consecutive ones merged
into one user turn, as Anthropic requires for parallel calls); ``max_tokens`` defaults to
4096 (Anthropic requires it). ``response_format``: ``json_schema`` is enforced by a forced
tool whose input schema is the requested schema (its input is returned as the message
content); ``json_object`` adds a system instruction to answer with one JSON object.

Anthropic → OpenAI: text blocks → ``content``; ``tool_use`` → ``tool_calls``; ``stop_reason``
→ ``finish_reason``; usage (input + cache read + cache creation = prompt tokens; cache read
also as ``prompt_tokens_details.cached_tokens``); the SSE events → ``chat.completion.chunk``s
including tool-call argument deltas (a call that streams no input gets the input its
``content_block_start`` carried: ``{}``, never ``""``; a stream that ends, even cleanly, before the
``message_delta`` with its ``stop_reason`` was cut: an upstream fault, never a ``stop``);
``overloaded_error`` (HTTP 529) → 503, retryable.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import orjson

from ..policy.model import Target
from .base import UpstreamError, unsupported
from .engine import BUILD, DROP, MAP, REFUSE, NativeAdapter, Param, append_turn

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
JSON_TOOL = "json_response"

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _stops(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class AnthropicAdapter(NativeAdapter):
    kind = "anthropic"
    status_map = {529: 503}  # overloaded_error: retry elsewhere
    PARAMS: ClassVar[dict[str, Param]] = {
        "messages": BUILD("system → `system`; parts → content blocks; tool calls/results → `tool_use`/`tool_result`"),
        "max_tokens": MAP(default=DEFAULT_MAX_TOKENS, min=1, note="required by Anthropic"),
        "max_completion_tokens": MAP("max_tokens", min=1),
        "temperature": MAP(min=0, max=1, note="Anthropic's range is [0, 1]"),
        "top_p": MAP(min=0, max=1),
        "stop": MAP("stop_sequences", transform=_stops),
        "user": MAP("metadata.user_id"),
        "tools": BUILD("`function` tools → `{name, description, input_schema}`"),
        "tool_choice": BUILD("auto → auto, required → any, none → none, {function} → {type: tool}"),
        "parallel_tool_calls": BUILD("false → `tool_choice.disable_parallel_tool_use`"),
        "response_format": BUILD("json_schema → forced tool; json_object → system instruction"),
        "n": BUILD("only 1: Anthropic returns one candidate"),
        "seed": DROP("Anthropic has no seed; sampling is not reproducible"),
        "presence_penalty": DROP("no equivalent"),
        "frequency_penalty": DROP("no equivalent"),
        "service_tier": DROP("OpenAI billing tier"),
        "store": DROP("OpenAI stored completions"),
        "logprobs": REFUSE("Anthropic does not return log probabilities"),
        "top_logprobs": REFUSE("Anthropic does not return log probabilities"),
        "logit_bias": REFUSE("no equivalent"),
        "audio": REFUSE("no audio output"),
        "modalities": REFUSE("text output only"),
        "prediction": REFUSE("no predicted outputs"),
        "reasoning_effort": REFUSE("use a target whose model supports it"),
    }

    def default_headers(self) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION}

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def chat_url(self, target: Target, stream: bool) -> tuple[str, dict[str, str] | None]:
        return f"{self.provider.base_url}/v1/messages", None

    # -- request -----------------------------------------------------------------------------------
    def build(self, body: dict[str, Any], out: dict[str, Any], target: Target, stream: bool) -> None:
        out["model"] = target.model
        if stream:
            out["stream"] = True
        if (body.get("n") or 1) != 1:
            raise unsupported("n", "'n' must be 1 for anthropic targets (one candidate per request)")
        system, messages = convert_messages(body["messages"])
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            system.append({"type": "text", "text": "Respond with a single JSON object and nothing else."})
        if system:
            out["system"] = system
        out["messages"] = messages
        tools = [convert_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
        choice = convert_tool_choice(body.get("tool_choice"))
        if fmt.get("type") == "json_schema":
            schema = fmt.get("json_schema") or {}
            tools.append({
                "name": JSON_TOOL,
                "description": f"Return the answer as {schema.get('name', 'JSON')} matching this schema.",
                "input_schema": schema.get("schema") or {"type": "object"},
            })  # fmt: skip
            choice = {"type": "tool", "name": JSON_TOOL}
        if tools:
            out["tools"] = tools
        if body.get("parallel_tool_calls") is False:
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None and (tools or choice["type"] == "none"):
            out["tool_choice"] = choice

    # -- response ----------------------------------------------------------------------------------
    def to_openai(self, data: dict[str, Any], target: Target) -> dict[str, Any]:
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in data.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "tool_use" and block.get("name") == JSON_TOOL:
                text.append(orjson.dumps(block.get("input") or {}).decode())
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append({
                    "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                })  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        finish = FINISH.get(data.get("stop_reason") or "", "stop")
        if finish == "tool_calls" and not calls:
            finish = "stop"  # the forced JSON tool is an answer, not a call
        return {
            "id": data.get("id") or "msg",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": data.get("model") or target.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": convert_usage(data.get("usage") or {}),
        }

    def translator(self, target: Target) -> AnthropicStream:
        return AnthropicStream(target.model)


def convert_usage(u: dict[str, Any], prompt: int | None = None) -> dict[str, Any]:
    cache_read = u.get("cache_read_input_tokens") or 0
    cache_write = u.get("cache_creation_input_tokens") or 0
    prompt_tokens = prompt if prompt is not None else (u.get("input_tokens") or 0) + cache_read + cache_write
    completion = u.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_creation_tokens": cache_write},
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def convert_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text", "")}
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        if url.startswith("data:"):
            head, _, data = url.partition(",")
            media = head[5:].split(";")[0] or "image/png"
            return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise unsupported(where, f"content part type {kind!r} is not supported by anthropic targets")


def _content(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [convert_part(p, where) for p in content if isinstance(p, dict)]


_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def tool_id(value: Any) -> Any:
    """A tool call id as Anthropic accepts it (``^[a-zA-Z0-9_-]+$``). Ids from other providers
    may hold other characters (``functions.get_weather:0``): those become ``_`` plus a hash of
    the id, the same for the call and its result, so they still pair and never collide."""
    if not isinstance(value, str) or _TOOL_ID.fullmatch(value):
        return value
    digest = hashlib.blake2b(value.encode(), digest_size=6).hexdigest()
    return re.sub(r"[^a-zA-Z0-9_-]", "_", value)[:200] + "_" + digest


def convert_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, Anthropic messages) from OpenAI messages."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        append_turn(out, role, "content", blocks)

    for i, msg in enumerate(messages):
        role = msg.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            text = _text_of(msg.get("content"))
            if text:
                system.append({"type": "text", "text": text})
        elif role == "user":
            add("user", _content(msg.get("content"), where))
        elif role == "assistant":
            blocks = _content(msg.get("content"), where)
            for j, call in enumerate(msg.get("tool_calls") or []):
                fn = call.get("function") or {}
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = None
                if not isinstance(args, dict):  # Anthropic's tool_use input is an object
                    at = f"{where}.tool_calls[{j}].function.arguments"
                    raise unsupported(at, "tool call arguments must be a JSON object")
                blocks.append(
                    {"type": "tool_use", "id": tool_id(call.get("id")), "name": fn.get("name"), "input": args}
                )
            add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id(msg.get("tool_call_id")),
                        "content": _text_of(msg.get("content")),
                    }
                ],
            )
        else:
            raise unsupported(f"{where}.role", f"role {role!r} is not supported by anthropic targets")
    return system, out


def convert_tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise unsupported(f"tools[{i}].type", "only function tools are supported by anthropic targets")
    fn = tool.get("function") or {}
    out = {"name": fn.get("name"), "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def convert_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    raise unsupported("tool_choice", f"tool_choice {choice!r} is not supported by anthropic targets")


class AnthropicStream:
    """Anthropic SSE events → OpenAI chunks."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "msg"
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self._input: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_call index
        self._json_blocks: set[int] = set()
        self._inputs: dict[int, Any] = {}  # tool block -> the input its start carried, until a delta comes
        self._finished = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }  # fmt: skip

    def feed(self, event: dict[str, Any]) -> Iterable[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            msg = event.get("message") or {}
            self.id = msg.get("id") or self.id
            self.model = msg.get("model") or self.model
            self._input = msg.get("usage") or {}
            yield self._chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            idx = event.get("index", 0)
            if block.get("type") == "tool_use":
                self._inputs[idx] = block.get("input")
            if block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
                self._json_blocks.add(idx)
            elif block.get("type") == "tool_use":
                n = self._tools[idx] = len(self._tools)
                call = {
                    "index": n,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                yield self._chunk({"tool_calls": [call]})
            elif block.get("type") == "text" and block.get("text"):
                yield self._chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            idx = event.get("index", 0)
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                self._inputs.pop(idx, None)  # the input comes in deltas
            if delta.get("type") == "text_delta":
                yield self._chunk({"content": delta.get("text", "")})
            elif delta.get("type") == "input_json_delta" and idx in self._json_blocks:
                yield self._chunk({"content": delta.get("partial_json", "")})
            elif delta.get("type") == "input_json_delta" and idx in self._tools:
                yield self._chunk(
                    {
                        "tool_calls": [
                            {"index": self._tools[idx], "function": {"arguments": delta.get("partial_json", "")}}
                        ]
                    }
                )
        elif kind == "content_block_stop":
            yield from self._whole_input(event.get("index", 0))
        elif kind == "message_delta":
            usage = {**self._input, **(event.get("usage") or {})}
            self.usage = convert_usage(usage)
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                finish = FINISH.get(reason, "stop")
                if finish == "tool_calls" and not self._tools:
                    finish = "stop"
                self._finished = True
                yield self._chunk({}, finish)
        elif kind == "error":
            err = event.get("error") or {}
            status = 503 if err.get("type") == "overloaded_error" else 502
            raise UpstreamError("http", f"anthropic stream error: {err.get('message', 'unknown')}", status)

    def _whole_input(self, idx: int) -> Iterable[dict[str, Any]]:
        """A tool block that streamed no input: its arguments are the input its start carried —
        ``{}`` for a tool without parameters (Anthropic sends one empty delta), the whole input
        for servers that send it there and no deltas — never ``""``, which no JSON parser reads."""
        if idx not in self._inputs:
            return
        args = orjson.dumps(self._inputs.pop(idx) or {}).decode()
        if idx in self._json_blocks:
            yield self._chunk({"content": args})
        elif idx in self._tools:
            yield self._chunk({"tool_calls": [{"index": self._tools[idx], "function": {"arguments": args}}]})

    def finish(self) -> None:
        if not self._finished:
            raise UpstreamError("protocol", "the upstream's stream ended without a `stop_reason` (`message_delta`)")
