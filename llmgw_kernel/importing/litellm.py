"""LiteLLM's spend logs (the proxy's ``LiteLLM_SpendLogs`` table), exported as CSV, JSON or
JSONL (e.g. ``COPY "LiteLLM_SpendLogs" TO ... CSV HEADER``, or the ``/spend/logs`` API's JSON).

Columns read (LiteLLM's schema): ``request_id``, ``call_type``, ``api_key`` (LiteLLM's hash of
the key, never the key), ``spend``, ``total_tokens``, ``prompt_tokens``, ``completion_tokens``,
``startTime``, ``endTime``, ``completionStartTime``, ``request_duration_ms``, ``model``,
``model_group`` (the public model name clients sent), ``custom_llm_provider``, ``user``,
``end_user``, ``team_id``, ``metadata`` (``spend_logs_metadata``, ``error_information``),
``cache_hit``, ``request_tags``, ``status`` (``success`` | ``failure``), ``messages``,
``response``, ``proxy_server_request`` (the last three only when LiteLLM stored prompts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import Parsed, parsed
from .rows import Imported
from .values import BadValue, count, epoch, flag, json_list, json_object, money, sub, text, usd

_CALL_TYPES = {
    "completion": ("chat.completions", "openai"), "acompletion": ("chat.completions", "openai"),
    "embedding": ("embeddings", "openai"), "aembedding": ("embeddings", "openai"),
    "anthropic_messages": ("chat.completions", "anthropic"),
}  # fmt: skip


def parse(paths: list[Path], mapping: dict[str, str] | None = None) -> Iterator[Parsed]:
    return parsed(paths, lambda r: text(r.get("request_id")), _row)


def _row(r: dict[str, Any]) -> Imported:
    call_type = text(r.get("call_type")) or "acompletion"
    if call_type not in _CALL_TYPES:
        raise BadValue(f"call_type {call_type!r}: llmgw imports chat completions, messages and embeddings")
    endpoint, api = _CALL_TYPES[call_type]
    ts = epoch(r.get("startTime"), "startTime")
    if ts is None:
        raise BadValue("startTime: missing")
    model, provider = text(r.get("model")), text(r.get("custom_llm_provider"))
    meta = json_object(r.get("metadata"), "metadata") or {}
    status = (text(r.get("status")) or "").lower()
    error = sub(meta, "error_information")
    first = epoch(r.get("completionStartTime"), "completionStartTime")
    row = Imported(
        ts=ts, source_id=text(r.get("request_id")), endpoint=endpoint, api=api,
        route=text(r.get("model_group")) or model, upstream_model=model, provider=provider,
        target=f"{provider}/{model}" if provider and model else model,
        ok=None if not status else status == "success",
        ts_end=epoch(r.get("endTime"), "endTime"),
        latency_ms=money(r.get("request_duration_ms"), "request_duration_ms"),
        prompt_tokens=count(r.get("prompt_tokens"), "prompt_tokens"),
        completion_tokens=count(r.get("completion_tokens"), "completion_tokens"),
        total_tokens=count(r.get("total_tokens"), "total_tokens"), cost_usd=usd(r.get("spend"), "spend"),
        team=text(r.get("team_id")), end_user=text(r.get("end_user")) or text(r.get("user")),
        key_id=f"litellm:{text(r.get('api_key'))[:16]}" if text(r.get("api_key")) else None,  # type: ignore[index]
        cache="hit" if flag(r.get("cache_hit"), "cache_hit") else None,
    )  # fmt: skip
    if first is not None and row.ts_end is not None and first < row.ts_end:
        row.ttft_ms = round((first - ts) * 1000.0, 3)  # LiteLLM sets it to endTime when nothing streamed
    code = text(error.get("error_code"))
    row.status = int(code) if code and code.isdigit() else None
    row.error_type, row.error_message = text(error.get("error_class")), text(error.get("error_message"))
    row.metadata = _metadata(meta, r.get("request_tags"))
    row.request = _request(r, row.route)
    row.response = json_object(r.get("response"), "response") if not isinstance(r.get("response"), list) else None
    row.stream = bool(row.request.get("stream")) if row.request else None
    return row


def _metadata(meta: dict[str, Any], tags: Any) -> dict[str, Any] | None:
    """The caller's own metadata (LiteLLM keeps it as ``spend_logs_metadata``) and the request's
    tags; LiteLLM's internal fields (key alias, hashed key, headers) are not request metadata."""
    out = dict(meta.get("spend_logs_metadata") or {}) if isinstance(meta.get("spend_logs_metadata"), dict) else {}
    listed = json_list(tags, "request_tags")
    if listed:
        out["tags"] = [str(t) for t in listed]
    return out or None


def _request(r: dict[str, Any], route: str | None) -> dict[str, Any] | None:
    """The request body: ``proxy_server_request`` when LiteLLM stored it, else the stored
    ``messages`` under the route's name (no other parameter is known then)."""
    body = json_object(r.get("proxy_server_request"), "proxy_server_request")
    if body:
        return body
    messages = json_list(r.get("messages"), "messages")
    return {"model": route, "messages": messages} if messages else None
