"""OpenAI chat answers → OpenAI Responses objects, for ``POST /v1/responses``: the response
(:func:`to_response`), its output items, status and usage. Streams: :mod:`.responses_stream`.

The response's ``id`` is ``resp_`` + the gateway's request id (the log row's), so a client can
name the row that served it; item ids derive from it (``msg_<id>``, ``fc_<id>_<n>``).
"""

from __future__ import annotations

import time
from typing import Any

#: chat ``finish_reason`` → (status, incomplete_details.reason)
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("req_")


def message_item(rid: str, text: str, status: str = "completed", n: int = 0) -> dict[str, Any]:
    """The ``n``-th message item of response ``rid`` (one per stretch of text in a stream)."""
    content = [output_text(text)] if status == "completed" or text else []
    item_id = "msg_" + rid[5:] + (f"_{n}" if n else "")
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(rid: str, n: int, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    item_id = f"fc_{rid[5:]}_{n}"
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}  # fmt: skip


def responses_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage → Responses usage (``input_tokens`` includes cached ones, as in OpenAI's API)."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    pdetails = usage.get("prompt_tokens_details") or {}
    cdetails = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": pdetails.get("cached_tokens") or 0,
            "cache_write_tokens": pdetails.get("cache_creation_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": cdetails.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def shell(rid: str, request: dict[str, Any], model: str, status: str) -> dict[str, Any]:
    """The response object around the output: what the request asked for, echoed as OpenAI does."""
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def finish(resp: dict[str, Any], finish_reason: Any) -> None:
    """Set ``status`` / ``incomplete_details`` from the chat ``finish_reason``."""
    reason = _INCOMPLETE.get(finish_reason)
    resp["status"] = "incomplete" if reason else "completed"
    resp["incomplete_details"] = {"reason": reason} if reason else None


def to_response(chat: dict[str, Any], rid: str, request: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` (first choice) as a Responses ``response``."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    resp = shell(rid, request, chat.get("model") or "", "completed")
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if msg.get("refusal"):
        resp["output"].append({**message_item(rid, ""), "content": [{"type": "refusal", "refusal": msg["refusal"]}]})
    elif text:
        resp["output"].append(message_item(rid, text))
    for n, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") or {}
        item = function_call_item(rid, n, call.get("id") or f"call_{n}", fn.get("name") or "",
                                  fn.get("arguments") or "", "completed")  # fmt: skip
        resp["output"].append(item)
    finish(resp, choice.get("finish_reason"))
    resp["usage"] = responses_usage(chat.get("usage"))
    return resp
