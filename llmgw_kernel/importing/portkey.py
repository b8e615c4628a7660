"""Portkey's log export (JSONL, one log a line; CSV with the same column names is read too).

Columns read (Portkey's export fields): ``id`` / ``trace_id``, ``created_at``,
``request.body`` and ``response.body`` (as dotted column names or nested objects),
``is_success`` (1/0), ``ai_org`` (provider), ``ai_model``, ``req_units``, ``res_units``,
``total_units`` (tokens), ``cost`` (**cents**; with ``cost_currency`` other than USD the cost is
not imported), ``request_url``, ``response_status_code``, ``response_time`` (ms),
``cache_status`` (``HIT`` | ``SEMANTIC HIT`` | ``MISS`` | ``DISABLED``), ``stream_mode``,
``metadata``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import Parsed, parsed
from .rows import Imported
from .values import BadValue, count, epoch, flag, json_object, money, sub, text, usd

_CACHE = {"HIT": "hit", "SEMANTIC HIT": "semantic-hit", "MISS": "miss"}


def parse(paths: list[Path], mapping: dict[str, str] | None = None) -> Iterator[Parsed]:
    return parsed(paths, lambda r: text(r.get("id")) or text(r.get("trace_id")), _row)


def _body(r: dict[str, Any], side: str) -> dict[str, Any] | None:
    nested = r.get(side)
    value = nested.get("body") if isinstance(nested, dict) else r.get(f"{side}.body")
    return json_object(value, f"{side}.body")


def _row(r: dict[str, Any]) -> Imported:
    ts = epoch(r.get("created_at"), "created_at")
    if ts is None:
        raise BadValue("created_at: missing")
    request, response = _body(r, "request"), _body(r, "response")
    org, model = text(r.get("ai_org")), text(r.get("ai_model"))
    url = text(r.get("request_url")) or ""
    endpoint = "embeddings" if "/embeddings" in url else "chat.completions"
    if url and not any(p in url for p in ("/chat/completions", "/embeddings", "/messages")):
        raise BadValue(f"request_url {url!r}: llmgw imports chat completions, messages and embeddings")
    cents = money(r.get("cost"), "cost")
    currency = (text(r.get("cost_currency")) or "USD").upper()
    success = flag(r.get("is_success"), "is_success")
    row = Imported(
        ts=ts, source_id=text(r.get("id")) or text(r.get("trace_id")), endpoint=endpoint,
        api="anthropic" if url.rstrip("/").endswith("/messages") else "openai",
        route=text(request.get("model")) if request else model, upstream_model=model, provider=org,
        target=f"{org}/{model}" if org and model else model,
        status=count(r.get("response_status_code"), "response_status_code"), ok=success,
        latency_ms=money(r.get("response_time"), "response_time"),
        prompt_tokens=count(r.get("req_units"), "req_units"), completion_tokens=count(r.get("res_units"), "res_units"),
        total_tokens=count(r.get("total_units"), "total_units"),
        cost_usd=usd(cents, "cost", per_usd=100) if currency == "USD" else None,
        cache=_CACHE.get((text(r.get("cache_status")) or "").upper()),
        stream=flag(r.get("stream_mode"), "stream_mode"), metadata=json_object(r.get("metadata"), "metadata"),
        request=request, response=response,
    )  # fmt: skip
    if row.ok is False and response:
        err = sub(response, "error")
        row.error_type, row.error_message = text(err.get("type") or err.get("code")), text(err.get("message"))
    if row.metadata:
        row.team = text(row.metadata.get("team"))
        row.end_user = text(row.metadata.get("_user")) or text(row.metadata.get("user"))
    return row
