"""OpenAI's Responses API and legacy completions, as a fake upstream speaks them: the documented
JSON and SSE wire formats, for ``tests/fake_openai.py`` and ``tests/fake_azure.py``.

``POST .../responses`` answers a ``response`` object, or (``stream: true``) the event sequence
OpenAI documents, each as ``event: <type>`` + ``data: {...}`` with a ``sequence_number``:
``response.created``, ``response.in_progress``, then per output item
``response.output_item.added`` → (message) ``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``, ``response.content_part.done``
/ (function call) ``response.function_call_arguments.delta``…, ``.done`` / (web search)
``response.web_search_call.in_progress``, ``.searching``, ``.completed`` →
``response.output_item.done``; finally ``response.completed`` with the whole response and its
usage (input/output tokens, cached tokens).

Behaviour by ``model`` (the target's model name, as for chat): a text answer
``Hello from the fake upstream: <last user text>``; with a ``web_search`` tool, a
``web_search_call`` item first and a message citing a URL; ``tool-call`` calls the first function
tool with ``{"city": "Paris"}`` until a ``function_call_output`` arrives, then answers ``The tool
said: <output>``; ``pii-out`` answers with an e-mail address and a phone number (for output
guardrails); ``pii-reasoning`` answers with a ``reasoning`` item whose summary holds a phone
number (:data:`PII_SUMMARY`) before the message, ``pii-tools`` with a ``file_search_call`` whose
result text holds an e-mail address and a message whose ``url_citation`` title holds it too
(streamed: ``response.reasoning_summary_*`` and ``response.file_search_call.*`` events);
``pii-parts`` with a message of two parts (:data:`PII_PARTS`), each with a value before the text
its ``url_citation`` cites (streamed with ``response.output_text.annotation.added``); a ``text.format`` of type ``json_schema`` gets ``{"city": "Paris"}``;
``status-NNN`` fails with NNN; ``stream-cut-0`` / ``stream-cut-2`` die before the first event /
after two. A request without ``model`` or ``input`` (``prompt``), with
``metadata`` (the gateway keeps it), or with a ``model`` that is not a string is recorded in
``.invalid``.

``POST .../completions`` answers a ``text_completion`` (``echo`` prepends the prompt; ``n``
choices), or a stream of ``text_completion`` chunks, a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, NamedTuple

from aiohttp import web

USAGE = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 7,
         "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 18}  # fmt: skip
COMPLETION_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
PII_ANSWER = "Write to alice.nguyen@example.com or call +1 415 555 0134 today."
CITED = "https://example.com/weather"
PII_SUMMARY = "The user wants a callback at +1 415 555 0134 so I will answer briefly."
PII_RESULT = "Contact: alice.nguyen@example.com (support desk)."
#: ``pii-parts``: a message of two ``output_text`` parts, each citing a URL after a value
PII_PARTS = ("Write to alice.nguyen@example.com about the weather. ", "Or call +1 415 555 0134, see the forecast.")


def problem(body: dict[str, Any], field: str) -> str | None:
    """Why OpenAI would refuse this Responses (``field='input'``) or completions (``'prompt'``) body."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    if body.get(field) is None and not body.get("previous_response_id"):
        return f"Missing required parameter: '{field}'."
    if "metadata" in body:
        return "metadata reached the upstream (the gateway keeps it)"
    return None


def last_user_text(body: dict[str, Any]) -> str:
    value = body.get("input")
    if isinstance(value, str):
        return value
    for item in reversed(value or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


class Style(NamedTuple):
    """How one fake words its answers: the text before the echo, the usage, a tool call's id."""

    prefix: str = "Hello from the fake upstream: "
    usage: dict[str, Any] = USAGE
    call_id: str = "call_01"


DEFAULT = Style()


def output_items(body: dict[str, Any], style: Style = DEFAULT) -> list[dict[str, Any]]:
    """The output items the fake answers ``body`` with (completed)."""
    model = body["model"]
    tools = body.get("tools") or []
    outputs = [i for i in body.get("input") or [] if isinstance(i, dict) and i.get("type") == "function_call_output"]
    fn_tools = [t for t in tools if t.get("type") == "function"]
    if model == "tool-call" and fn_tools and not outputs:
        return [{"type": "function_call", "id": "fc_fake_1", "call_id": style.call_id, "name": fn_tools[0]["name"],
                 "arguments": json.dumps({"city": "Paris"}), "status": "completed"}]  # fmt: skip
    items: list[dict[str, Any]] = []
    text = style.prefix + last_user_text(body)[:200]
    annotations: list[dict[str, Any]] = []
    if outputs:
        text = f"The tool said: {outputs[-1].get('output')}"
    if model == "pii-out":
        text = PII_ANSWER
    if model == "pii-reasoning":
        items.append(
            {"type": "reasoning", "id": "rs_fake_1", "summary": [{"type": "summary_text", "text": PII_SUMMARY}]}
        )
    if model == "pii-tools":
        items.append({"type": "file_search_call", "id": "fs_fake_1", "status": "completed", "queries": ["contact"],
                      "results": [{"file_id": "file_1", "filename": "a.txt", "score": 0.9, "text": PII_RESULT}]})  # fmt: skip
        annotations = [{"type": "url_citation", "start_index": 0, "end_index": 5, "url": CITED,
                        "title": "Mail alice.nguyen@example.com"}]  # fmt: skip
    if ((body.get("text") or {}).get("format") or {}).get("type") == "json_schema":  # structured output
        text = json.dumps({"city": "Paris"})
    if any(t.get("type") == "web_search" for t in tools):
        items.append({"type": "web_search_call", "id": "ws_fake_1", "status": "completed",
                      "action": {"type": "search", "query": last_user_text(body)[:50]}})  # fmt: skip
        annotations = [{"type": "url_citation", "start_index": 0, "end_index": 5, "url": CITED, "title": "Weather"}]
    parts = [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]
    if model == "pii-parts":
        parts = [{"type": "output_text", "text": t, "annotations": [cite(t, w)], "logprobs": []}
                 for t, w in zip(PII_PARTS, ("weather", "forecast"), strict=True)]  # fmt: skip
    items.append({"type": "message", "id": "msg_fake_1", "status": "completed", "role": "assistant",
                  "content": parts})  # fmt: skip
    return items


def cite(text: str, words: str) -> dict[str, Any]:
    """A ``url_citation`` of ``words`` in ``text``."""
    start = text.index(words)
    return {"type": "url_citation", "start_index": start, "end_index": start + len(words), "url": CITED,
            "title": words.title()}  # fmt: skip


def response(body: dict[str, Any], status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake_1", "object": "response", "created_at": int(time.time()), "status": status,
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": body["model"], "output": output,
        "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None}, "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }  # fmt: skip


def item_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """The events that stream one output item (without sequence numbers)."""
    at = {"output_index": index, "item_id": item["id"]}
    if item["type"] == "message":
        events = [{"type": "response.output_item.added", "output_index": index,
                   "item": {**item, "status": "in_progress", "content": []}}]  # fmt: skip
        for n, part in enumerate(item["content"]):
            events += part_events(part, {**at, "content_index": n})
        return [*events, {"type": "response.output_item.done", "output_index": index, "item": item}]
    if item["type"] == "function_call":
        raw = item["arguments"]
        pieces = [{"type": "response.function_call_arguments.delta", **at, "delta": raw[k : k + 5]}
                  for k in range(0, len(raw), 5)]  # fmt: skip
        return [
            {"type": "response.output_item.added", "output_index": index,
             "item": {**item, "arguments": "", "status": "in_progress"}},
            *pieces,
            {"type": "response.function_call_arguments.done", **at, "arguments": raw},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]  # fmt: skip
    if item["type"] == "reasoning":
        return reasoning_events(item, index)
    tool = item["type"].removesuffix("_call")
    return [
        {"type": "response.output_item.added", "output_index": index, "item": {**item, "status": "in_progress"}},
        {"type": f"response.{tool}_call.in_progress", **at},
        {"type": f"response.{tool}_call.searching", **at},
        {"type": f"response.{tool}_call.completed", **at},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def reasoning_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """A reasoning item's summary, streamed word by word."""
    at = {"output_index": index, "item_id": item["id"], "summary_index": 0}
    text = item["summary"][0]["text"]
    words = text.split(" ")
    deltas = [{"type": "response.reasoning_summary_text.delta", **at, "delta": w + (" " if i < len(words) - 1 else "")}
              for i, w in enumerate(words)]  # fmt: skip
    return [
        {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": []}},
        {"type": "response.reasoning_summary_part.added", **at, "part": {"type": "summary_text", "text": ""}},
        *deltas,
        {"type": "response.reasoning_summary_text.done", **at, "text": text},
        {"type": "response.reasoning_summary_part.done", **at, "part": {"type": "summary_text", "text": text}},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def part_events(part: dict[str, Any], at: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of one ``output_text`` part: its words as deltas, then its annotations (as
    OpenAI sends them: after the text they cite, before ``response.output_text.done``)."""
    text = part["text"]
    words = text.split(" ")
    deltas = [{"type": "response.output_text.delta", **at, "delta": w + (" " if i < len(words) - 1 else ""),
               "logprobs": []} for i, w in enumerate(words)]  # fmt: skip
    notes = [{"type": "response.output_text.annotation.added", **at, "annotation_index": k, "annotation": note}
             for k, note in enumerate(part["annotations"])]  # fmt: skip
    return [
        {"type": "response.content_part.added", **at, "part": {**part, "text": "", "annotations": []}},
        *deltas,
        *notes,
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
    ]


def stream_events(body: dict[str, Any], style: Style = DEFAULT) -> list[dict[str, Any]]:
    """The whole documented event sequence of a streamed answer, numbered."""
    items = output_items(body, style)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response(body, "in_progress", [], None)},
        {"type": "response.in_progress", "response": response(body, "in_progress", [], None)},
    ]
    for index, item in enumerate(items):
        events += item_events(item, index)
    events.append({"type": "response.completed", "response": response(body, "completed", items, style.usage)})
    return [{**e, "sequence_number": n} for n, e in enumerate(events)]


def error(status: int, message: str) -> web.Response:
    err = {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error", "param": None,
           "code": None}  # fmt: skip
    return web.json_response({"error": err}, status=status)


async def answer_responses(request: web.Request, body: dict[str, Any], style: Style = DEFAULT) -> web.StreamResponse:
    """Answer a (valid) Responses request the way its ``model`` says."""
    model = body["model"]
    if model.startswith("status-"):
        return error(int(model.split("-")[1]), "fake upstream failure")
    if not body.get("stream"):
        return web.json_response(response(body, "completed", output_items(body, style), style.usage))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for n, event in enumerate(stream_events(body, style)):
        if model == f"stream-cut-{n}":
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await asyncio.sleep(0)
    return resp


async def answer_completions(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """Answer a (valid) legacy completions request."""
    model, prompt = body["model"], body["prompt"]
    prompt = prompt[0] if isinstance(prompt, list) else prompt
    if model.startswith("status-"):
        return error(int(model.split("-")[1]), "fake upstream failure")
    text = (prompt if body.get("echo") else "") + "Hello from the fake upstream: " + prompt[:200]
    head = {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()), "model": model}
    n = int(body.get("n") or 1)
    if not body.get("stream"):
        choices = [{"text": text, "index": i, "logprobs": None, "finish_reason": "stop"} for i in range(n)]
        return web.json_response({**head, "choices": choices, "usage": COMPLETION_USAGE})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    words = text.split(" ")
    for i, word in enumerate(words):
        piece = word + (" " if i < len(words) - 1 else "")
        last = i == len(words) - 1
        choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": "stop" if last else None}
        await resp.write(b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(b"data: " + json.dumps({**head, "choices": [], "usage": COMPLETION_USAGE}).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp
