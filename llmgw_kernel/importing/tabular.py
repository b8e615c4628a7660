"""Any table of requests (CSV, Parquet, JSON, JSONL) with a column mapping given on the
command line: ``--map ts=created_at --map route=model_name ...``. A field not mapped is read
from a column of its own name when there is one; ``ts`` is required.

Fields: ``id``, ``ts``, ``ts_end``, ``endpoint`` (``chat.completions`` | ``embeddings``),
``route`` (the model the client asked for), ``target`` (``provider/model`` that answered),
``provider``, ``model`` (the provider's model name), ``status`` (HTTP), ``ok`` (true/false),
``error``, ``latency_ms``, ``ttft_ms``, ``prompt_tokens``, ``completion_tokens``,
``total_tokens``, ``cost_usd``, ``team``, ``user``, ``key``, ``stream``, ``metadata`` (JSON
object), ``request`` / ``response`` (JSON bodies), ``prompt`` (the text of a single user
message, when the table keeps no body).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import Parsed, parsed
from .rows import ENDPOINTS, Imported
from .values import BadValue, count, epoch, flag, json_object, money, text, usd

FIELDS = (
    "id", "ts", "ts_end", "endpoint", "route", "target", "provider", "model", "status", "ok", "error", "latency_ms",
    "ttft_ms", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "team", "user", "key", "stream",
    "metadata", "request", "response", "prompt",
)  # fmt: skip


def check_mapping(mapping: dict[str, str]) -> None:
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ValueError(f"--map {', '.join(unknown)}: unknown field(s); the fields are {', '.join(FIELDS)}")


def parse(paths: list[Path], mapping: dict[str, str] | None = None) -> Iterator[Parsed]:
    names = dict(mapping or {})
    check_mapping(names)

    def column(obj: dict[str, Any], field: str) -> Any:
        return obj.get(names.get(field, field))

    return parsed(paths, lambda r: text(column(r, "id")), lambda r: _row(lambda f: column(r, f)))


def _row(get: Any) -> Imported:
    ts = epoch(get("ts"), "ts")
    if ts is None:
        raise BadValue("ts: missing (map it with --map ts=<column>)")
    endpoint = text(get("endpoint")) or "chat.completions"
    if endpoint not in ENDPOINTS:
        raise BadValue(f"endpoint {endpoint!r}: one of {', '.join(ENDPOINTS)}")
    route, provider, model = text(get("route")), text(get("provider")), text(get("model"))
    request = json_object(get("request"), "request")
    prompt = text(get("prompt"))
    if request is None and prompt is not None:
        request = {"model": route, "messages": [{"role": "user", "content": prompt}]}
    return Imported(
        ts=ts, source_id=text(get("id")), endpoint=endpoint, route=route, provider=provider, upstream_model=model,
        target=text(get("target")) or (f"{provider}/{model}" if provider and model else None),
        status=count(get("status"), "status"), ok=flag(get("ok"), "ok"), error_message=text(get("error")),
        ts_end=epoch(get("ts_end"), "ts_end"), latency_ms=money(get("latency_ms"), "latency_ms"),
        ttft_ms=money(get("ttft_ms"), "ttft_ms"), prompt_tokens=count(get("prompt_tokens"), "prompt_tokens"),
        completion_tokens=count(get("completion_tokens"), "completion_tokens"),
        total_tokens=count(get("total_tokens"), "total_tokens"), cost_usd=usd(get("cost_usd"), "cost_usd"),
        team=text(get("team")), end_user=text(get("user")), key_id=text(get("key")),
        stream=flag(get("stream"), "stream"),
        metadata=json_object(get("metadata"), "metadata"), request=request,
        response=json_object(get("response"), "response"),
    )  # fmt: skip
