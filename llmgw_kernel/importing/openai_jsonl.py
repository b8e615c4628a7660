"""OpenAI-format JSONL: the Batch API's input and output files, or request/response pairs.

- **Batch output** lines (``{"id", "custom_id", "response": {"status_code", "request_id",
  "body"}, "error"}``) are joined by ``custom_id`` with the **batch input** lines given in the
  same import (``{"custom_id", "method", "url", "body"}``): the input supplies the request
  body and the model asked for, the output the answer, its usage and its time
  (``response.body.created``). An output without its input keeps no request body and no route.
  An input without an output never ran: it is reported, not imported.
- **Pairs**: ``{"request": {...}, "response": {...}}``, with optional ``id``, ``ts`` (or
  ``created_at``), ``ts_end``, ``latency_ms``, ``status``, ``metadata``; the time defaults to
  ``response.created``.

Only ``/v1/chat/completions`` and ``/v1/embeddings`` are imported (what llmgw serves).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import Parsed, records
from .rows import Imported
from .values import BadValue, count, epoch, json_object, money, sub, text

_ENDPOINTS = {"/v1/chat/completions": "chat.completions", "/v1/embeddings": "embeddings"}


def parse(paths: list[Path], mapping: dict[str, str] | None = None) -> Iterator[Parsed]:
    inputs: dict[str, tuple[str, dict[str, Any]]] = {}
    outputs: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        for where, obj in records(path):
            if isinstance(obj, Exception):
                yield where, where, obj
            elif "custom_id" in obj and ("response" in obj or "error" in obj):
                outputs.append((where, obj))
            elif "custom_id" in obj and "body" in obj:
                inputs[str(obj["custom_id"])] = (where, obj)
            elif "request" in obj or "response" in obj:
                yield where, str(obj.get("id") or where), _guard(_pair, obj)
            else:
                yield where, where, ValueError("neither a batch input/output line nor a request/response pair")
    for where, out in outputs:
        cid = str(out["custom_id"])
        given = inputs.pop(cid, None)
        yield where, f"batch:{cid}:{out.get('id')}", _guard(_batch, out, given[1] if given else None)
    for where, _obj in inputs.values():
        yield where, where, ValueError("a batch input line with no output line: the request never ran")


def _guard(fn: Any, *args: Any) -> Imported | Exception:
    try:
        return fn(*args)  # type: ignore[no-any-return]
    except BadValue as exc:
        return exc


def _batch(out: dict[str, Any], given: dict[str, Any] | None) -> Imported:
    response = sub(out, "response")
    body = json_object(response.get("body"), "response.body") or {}
    url = text(given.get("url")) if given else None
    endpoint = _endpoint(url) if url else ("embeddings" if body.get("object") == "list" else "chat.completions")
    request = json_object(given.get("body"), "body") if given else None
    ts = epoch(body.get("created"), "response.body.created")
    if ts is None:
        raise BadValue("no time: a batch output line without response.body.created (an error line) has none")
    error = sub(out, "error")
    row = _from_bodies(ts, request, body, endpoint)
    row.source_id = text(response.get("request_id")) or text(out.get("id"))
    row.status = count(response.get("status_code"), "response.status_code")
    if error:
        row.error_type, row.error_message = text(error.get("code")), text(error.get("message"))
    if row.status is not None and row.status >= 400:
        err = sub(body, "error")
        row.error_type = row.error_type or text(err.get("type") or err.get("code"))
        row.error_message = row.error_message or text(err.get("message"))
    row.metadata = {"batch_custom_id": str(out["custom_id"])}
    return row


def _pair(obj: dict[str, Any]) -> Imported:
    request = json_object(obj.get("request"), "request")
    response = json_object(obj.get("response"), "response")
    embeds = request is not None and "input" in request and "messages" not in request
    endpoint = _endpoint(text(obj.get("url"))) if obj.get("url") else ("embeddings" if embeds else "chat.completions")
    ts = epoch(obj.get("ts", obj.get("created_at")), "ts")
    if ts is None and response:
        ts = epoch(response.get("created"), "response.created")
    if ts is None:
        raise BadValue("no time: give ts (or created_at), or a response with created")
    row = _from_bodies(ts, request, response or {}, endpoint)
    row.source_id = text(obj.get("id"))
    row.ts_end = epoch(obj.get("ts_end"), "ts_end")
    row.latency_ms = money(obj.get("latency_ms"), "latency_ms")
    row.status = count(obj.get("status"), "status")
    row.metadata = json_object(obj.get("metadata"), "metadata")
    if row.status is None and response is not None:
        row.ok = "error" not in response
    return row


def _from_bodies(ts: float, request: dict[str, Any] | None, body: dict[str, Any], endpoint: str) -> Imported:
    model = text(body.get("model"))
    usage = sub(body, "usage")
    return Imported(
        ts=ts, endpoint=endpoint, route=text(request.get("model")) if request else None,
        target=f"openai/{model}" if model else None, provider="openai" if model else None, upstream_model=model,
        prompt_tokens=count(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        completion_tokens=count(usage.get("completion_tokens"), "usage.completion_tokens"),
        total_tokens=count(usage.get("total_tokens"), "usage.total_tokens"),
        stream=bool(request.get("stream")) if request else None, request=request, response=body or None,
    )  # fmt: skip


def _endpoint(url: str | None) -> str:
    path = (url or "").split("?")[0].rstrip("/")
    if path not in _ENDPOINTS:
        raise BadValue(f"url {url!r}: only /v1/chat/completions and /v1/embeddings are imported")
    return _ENDPOINTS[path]
