"""One imported request, format-independent, and how it becomes a log record.

Each format's reader turns a line (or row) of its file into an :class:`Imported`, filling only
what the source says; :func:`to_record` turns that into the same
:class:`~llmgw_kernel.log.record.RequestRecord` the proxy fills in, so the real
:class:`~llmgw_kernel.log.writer.LogWriter` writes it and every reader of the log (replay,
notebooks, dashboards) sees an ordinary row with ``origin = 'import:<format>'``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..log.record import RequestRecord

ENDPOINTS = ("chat.completions", "embeddings")


@dataclass
class Imported:
    """What one source record says about a request. ``ts`` is the only required field."""

    ts: float
    source_id: str | None = None  # the source's own request id (kept as client_request_id)
    endpoint: str = "chat.completions"
    api: str = "openai"  # the inbound API the client used: openai | anthropic | responses | completions
    route: str | None = None  # the model name the client asked for
    target: str | None = None  # provider/model that answered
    provider: str | None = None
    upstream_model: str | None = None
    status: int | None = None
    ok: bool | None = None
    error_type: str | None = None
    error_message: str | None = None
    ts_end: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    metadata: dict[str, Any] | None = None
    team: str | None = None
    end_user: str | None = None
    key_id: str | None = None
    stream: bool | None = None
    cache: str | None = None  # hit | semantic-hit | miss, as the source's own cache decided
    request: dict[str, Any] | None = None  # the request body, if the source kept it
    response: dict[str, Any] | None = None  # the response body, if the source kept it
    extra: dict[str, Any] = field(default_factory=dict)


def request_id(fmt: str, key: str) -> str:
    """A stable id for an imported row: the same source record always gets the same id, so a
    second import of the same file is recognised (and skipped) rather than duplicated."""
    return "imp-" + hashlib.blake2b(f"{fmt}\0{key}".encode(), digest_size=12).hexdigest()


def to_record(row: Imported, fmt: str, key: str) -> RequestRecord:
    """The log record of ``row``; ``key`` identifies its source record (its id, else its content)."""
    rec = RequestRecord(request_id(fmt, key), row.ts, row.endpoint, row.api)
    rec.origin = f"import:{fmt}"
    rec.client_request_id = row.source_id
    for name in ("route", "target", "provider", "upstream_model", "error_type", "error_message", "ts_end",
                 "latency_ms", "ttft_ms", "cost_usd", "metadata", "team", "end_user", "key_id", "cache"):  # fmt: skip
        setattr(rec, name, getattr(row, name))
    if row.target is not None:  # the source's routing is unknown beyond the target that answered
        rec.plan, rec.route_reason = (row.target,), f"imported from {fmt}: the target that answered"
    rec.status = row.status  # type: ignore[assignment]  # NULL when the source gives no HTTP status
    ok = row.ok if row.ok is not None else (row.status is not None and 200 <= row.status < 300)
    rec.outcome = "ok" if ok else "error"
    rec.stream = bool(row.stream)
    if rec.latency_ms is None and row.ts_end is not None:
        rec.latency_ms = round((row.ts_end - row.ts) * 1000.0, 3)
    usage = {k: v for k, v in (("prompt_tokens", row.prompt_tokens), ("completion_tokens", row.completion_tokens),
                               ("total_tokens", row.total_tokens)) if v is not None}  # fmt: skip
    rec.usage = usage or None
    if row.request is not None:
        rec.request_raw = orjson.dumps(row.request)
        rec.temperature = _number(row.request.get("temperature"))
    if row.response is not None:
        rec.response_raw = orjson.dumps(row.response)
    rec.body_mode = "full" if row.request is not None or row.response is not None else "none"
    return rec


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
