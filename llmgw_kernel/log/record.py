"""What the proxy fills in per request, and how it becomes a log row.

The hot path only assigns attributes of a :class:`RequestRecord` (a slotted object); the
writer thread turns it into a row (:func:`to_row`): hashing, decoding bodies and
reassembling streams happen there, off the event loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from ..decisions.cache import exact_key
from .schema import COLUMN_NAMES, COLUMNS, ROUTE_DRAW, SKIPPED

JSON_COLUMNS = frozenset(name for name, typ, _ in COLUMNS if typ == "JSON")
#: body modes whose rows keep the request and response (``redacted``: after input guardrails)
_BODIES_KEPT = ("full", "redacted")
#: the ``endpoint`` of the log row of the gateway's own check of a sampled semantic hit
#: (proxy/cache_verify.py): not a client's request — its cost is spend charged to the hit's
#: budgets. Defined here, beside the record, so the proxy and replay name it from one place.
CHECK_ENDPOINT = "cache.check"


class RequestRecord:
    """One request's facts, filled in as the pipeline runs."""

    __slots__ = (
        "request_id", "client_request_id", "ts", "ts_end", "endpoint", "route", "policy_version",
        "stream", "status", "outcome", "error_type", "error_message", "plan", "route_reason",
        "target", "provider", "upstream_model", "attempts", "latency_ms", "ttft_ms", "upstream_ms",
        "usage", "metadata", "user_agent", "body_mode", "request_raw", "response_raw",
        "stream_events", "api", "retries", "backoff_ms", "key_id", "temperature", "cost_usd", "cache",
        "cache_reason", "cache_similarity", "cache_source", "saved_usd", "cache_control", "cache_ns_header",
        "cache_namespace", "cache_key", "cache_context", "cache_lookup_ts", "cache_stored_ts", "cache_features",
        "embedding", "embedding_model", "team", "end_user", "key_version", "admission", "admission_reason",
        "budget_flags", "admitted_ts", "settled_ts", "reserved_usd", "reserved_tokens", "reserved_prompt_tokens",
        "usage_estimated", "origin", "guardrails", "cache_threshold", "cache_verify", "route_draw",
    )  # fmt: skip

    def __init__(self, request_id: str, ts: float, endpoint: str, api: str = "openai") -> None:
        self.request_id = request_id
        self.ts = ts
        self.endpoint = endpoint
        self.api = api  # the inbound API: openai | anthropic | responses | completions
        self.client_request_id: str | None = None
        self.ts_end: float | None = None
        self.route: str | None = None
        self.policy_version: str | None = None
        self.stream = False
        self.status = 0
        self.outcome = "error"
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.plan: tuple[str, ...] | None = None
        self.route_reason: str | None = None
        self.target: str | None = None
        self.provider: str | None = None
        self.upstream_model: str | None = None
        self.attempts: list[dict[str, Any]] = []
        self.latency_ms: float | None = None
        self.ttft_ms: float | None = None
        self.upstream_ms: float | None = None
        self.usage: dict[str, Any] | None = None
        self.metadata: dict[str, Any] | None = None
        self.user_agent: str | None = None
        self.body_mode = "full"
        self.request_raw: bytes = b""
        self.response_raw: bytes | None = None
        self.stream_events: list[bytes] | None = None
        self.retries = 0
        self.backoff_ms = 0.0
        self.key_id: str | None = None
        self.temperature: float | None = None
        self.cost_usd: float | None = None
        self.cache: str | None = None
        self.cache_reason: str | None = None
        self.cache_similarity: float | None = None
        self.cache_source: str | None = None
        self.saved_usd: float | None = None
        self.cache_control: str | None = None
        self.cache_ns_header: str | None = None
        self.cache_namespace: str | None = None
        self.cache_key: str | None = None
        self.cache_context: str | None = None
        self.cache_lookup_ts: float | None = None  # when the stores were consulted (their state then)
        self.cache_stored_ts: float | None = None
        self.cache_features: dict[str, Any] | None = None
        self.cache_threshold: float | None = None  # the semantic threshold applied (learned under a bound)
        self.cache_verify: str | None = None  # shadow | sampled | skipped_cap | check
        self.embedding: Any = None  # numpy float32 vector
        self.embedding_model: str | None = None
        self.team: str | None = None
        self.end_user: str | None = None
        self.key_version: int | None = None
        self.admission: str | None = None
        self.admission_reason: str | None = None
        self.budget_flags: list[str] | None = None
        self.admitted_ts: float | None = None
        self.settled_ts: float | None = None
        self.reserved_usd: float | None = None
        self.reserved_tokens: int | None = None
        self.reserved_prompt_tokens: int | None = None  # the prompt's part of reserved_tokens
        self.usage_estimated = False  # usage counted by the gateway (the provider sent none)
        self.guardrails: list[dict[str, Any]] | None = None  # verdicts (guardrails.verdicts.Verdicts.summary)
        self.origin: str | None = None  # None: served here; "import:<format>": written by `llmgw import`
        self.route_draw = ROUTE_DRAW  # the weighted draw this release makes (log.schema.ROUTE_DRAW)


def _cached_tokens(usage: dict[str, Any]) -> int | None:
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_request_bytes(request: dict[str, Any]) -> bytes:
    """The parts of a request that determine its answer, in a canonical encoding."""
    body = {k: v for k, v in request.items() if k not in ("model", "metadata", "stream", "stream_options")}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def assemble_stream(events: list[bytes]) -> dict[str, Any] | None:
    """Rebuild one chat.completion from the SSE ``data:`` payloads of a stream."""
    choices: dict[int, dict[str, Any]] = {}
    head: dict[str, Any] = {}
    usage = None
    for raw in events:
        try:
            chunk = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not head:
            head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint")}
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk.get("choices") or ():
            idx = ch.get("index", 0)
            slot = choices.setdefault(
                idx, {"index": idx, "message": {"role": "assistant", "content": ""}, "finish_reason": None}
            )
            delta = ch.get("delta") or {}
            if delta.get("content"):
                slot["message"]["content"] += delta["content"]
            for call in delta.get("tool_calls") or ():
                calls = slot["message"].setdefault("tool_calls", [])
                i = call.get("index", len(calls))
                while len(calls) <= i:
                    calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    calls[i]["id"] = call["id"]
                fn = call.get("function") or {}
                calls[i]["function"]["name"] += fn.get("name") or ""
                calls[i]["function"]["arguments"] += fn.get("arguments") or ""
            if ch.get("finish_reason"):
                slot["finish_reason"] = ch["finish_reason"]
    if not head and not choices:
        return None
    return {**head, "object": "chat.completion", "choices": [choices[i] for i in sorted(choices)], "usage": usage}


def _sorted_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _hash_or_none(encode: Any, value: Any) -> str | None:
    """SHA-256 of ``encode(value)``; None when the value cannot be encoded (e.g. nested deeper
    than orjson's 254 levels): the row is still written, without that hash."""
    try:
        return _sha256(encode(value))
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError):
        return None


UNSERIALIZABLE = "llmgw_unserializable"
"""The key of the marker that replaces a JSON column value that cannot be serialised:
``{"llmgw_unserializable": "<reason>"}``."""


def encode_row(row: dict[str, Any]) -> bytes:
    """One row as a JSON line for the segment writer. Never raises: a JSON column whose value
    cannot be serialised becomes ``{"llmgw_unserializable": "<reason>"}``, any other such
    column NULL, so one bad row never blocks the others."""
    try:
        return orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError):
        pass
    clean = dict(row)
    for name, value in row.items():
        try:
            orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
        except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError) as exc:
            clean[name] = unserializable(exc) if name in JSON_COLUMNS else None
    return orjson.dumps(clean, option=orjson.OPT_SERIALIZE_NUMPY)


def unserializable(exc: BaseException | str) -> dict[str, str]:
    """The marker recorded in place of a value that cannot be serialised."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return {UNSERIALIZABLE: reason[:300]}


def minimal_row(rec: RequestRecord, reason: str) -> dict[str, Any]:
    """The row of a record whose full row cannot be built or written: its scalar facts, with
    the reason in ``metadata`` (so the request is still counted, and its spend)."""
    row = dict.fromkeys(COLUMN_NAMES)
    for name in _SCALARS:
        value = getattr(rec, name, None)
        row[name] = value if value is None or isinstance(value, (str, int, float, bool)) else None
    usage = rec.usage if isinstance(rec.usage, dict) else {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(name)
        row[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
    row["metadata"] = unserializable(reason)
    row["request_bytes"] = len(rec.request_raw or b"")
    return row


def to_row(rec: RequestRecord) -> dict[str, Any]:
    """The log row for a finished request (runs in the writer thread)."""
    usage = rec.usage or {}
    request_hash = request_body = None
    if rec.request_raw:
        try:
            parsed = orjson.loads(rec.request_raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            request_hash = _hash_or_none(canonical_request_bytes, parsed)
            if rec.body_mode in _BODIES_KEPT:
                request_body = parsed
        elif rec.body_mode in _BODIES_KEPT:
            request_body = {"unparsed": rec.request_raw[:4096].decode("utf-8", "replace")}
    response: Any = None
    response_bytes = None
    if rec.stream_events is not None:
        response = assemble_stream(rec.stream_events)
        response_bytes = sum(len(e) for e in rec.stream_events)
    elif rec.response_raw is not None:
        response_bytes = len(rec.response_raw)
        try:
            response = orjson.loads(rec.response_raw)
        except orjson.JSONDecodeError:
            response = {"unparsed": rec.response_raw[:4096].decode("utf-8", "replace")}
    response_hash = _hash_or_none(_sorted_json, response) if response is not None else None
    return {
        "request_id": rec.request_id,
        "client_request_id": rec.client_request_id,
        "ts": rec.ts,
        "ts_end": rec.ts_end,
        "endpoint": rec.endpoint,
        "route": rec.route,
        "policy_version": rec.policy_version,
        "stream": rec.stream,
        "status": rec.status,
        "outcome": rec.outcome,
        "error_type": rec.error_type,
        "error_message": rec.error_message,
        "plan": list(rec.plan) if rec.plan else None,
        "route_reason": rec.route_reason,
        "target": rec.target,
        "provider": rec.provider,
        "upstream_model": rec.upstream_model,
        "attempts": rec.attempts or None,
        "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms,
        "upstream_ms": rec.upstream_ms,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "total_tokens": usage.get("total_tokens"),
        "cached_tokens": _cached_tokens(usage),
        "usage_source": ("estimated" if rec.usage_estimated else "upstream") if rec.usage else "none",
        "metadata": rec.metadata,
        "user_agent": rec.user_agent,
        "body_mode": rec.body_mode,
        "request_hash": request_hash if rec.body_mode != "none" else None,
        "request_body": request_body,
        "response_hash": response_hash if rec.body_mode != "none" else None,
        "response_body": response if rec.body_mode in _BODIES_KEPT else None,
        "request_bytes": len(rec.request_raw),
        "response_bytes": response_bytes,
        "api": rec.api,
        "retries": rec.retries,
        "backoff_ms": rec.backoff_ms,
        "key_id": rec.key_id,
        "temperature": rec.temperature,
        "cost_usd": rec.cost_usd,
        "cache": rec.cache,
        "cache_reason": rec.cache_reason,
        "cache_similarity": rec.cache_similarity,
        "cache_source": rec.cache_source,
        "saved_usd": rec.saved_usd,
        "cache_control": rec.cache_control,
        "cache_ns_header": rec.cache_ns_header,
        "cache_namespace": rec.cache_namespace,
        "cache_key": rec.cache_key if rec.body_mode != "none" else None,
        "cache_context": rec.cache_context if rec.body_mode != "none" else None,
        "cache_lookup_ts": rec.cache_lookup_ts,
        "cache_stored_ts": rec.cache_stored_ts,
        "cache_features": rec.cache_features if rec.body_mode != "none" else None,
        "embedding": rec.embedding.tolist() if rec.embedding is not None and rec.body_mode != "none" else None,
        "embedding_model": rec.embedding_model,
        "team": rec.team,
        "end_user": rec.end_user,
        "key_version": rec.key_version,
        "admission": rec.admission,
        "admission_reason": rec.admission_reason,
        "budget_flags": rec.budget_flags,
        "admitted_ts": rec.admitted_ts,
        "settled_ts": rec.settled_ts,
        "reserved_usd": rec.reserved_usd,
        "reserved_tokens": rec.reserved_tokens,
        "reserved_prompt_tokens": rec.reserved_prompt_tokens,
        "origin": rec.origin,
        "guardrails": rec.guardrails,
        "cache_threshold": rec.cache_threshold,
        "cache_verify": rec.cache_verify,
        "route_draw": rec.route_draw,
        **list_scalars(rec.plan, rec.attempts),
        **replay_scalars(rec, request_body),
    }


def replay_scalars(rec: RequestRecord, request_body: Any) -> dict[str, Any]:
    """The scalar columns replay's exact cache reads instead of decoding JSON for every row:
    ``cache_team``, the logged metadata's ``team`` as ``replay.cache_stage._team`` reads it ('' for
    none: the namespace reads None and '' alike; NULL for any value but a string, which replay reads
    from the metadata), and ``exact_key``, for a row whose logged ``cache`` and ``cache_key``
    are NULL (no cache saw it), what ``replay.fold_cache_inputs._key_from_body`` makes of the
    logged body: ``decisions.cache.exact_key(route, body)``, '' when the body is not a JSON object
    (or is the ``unparsed`` stand-in; NULL when the body cannot be logged as it is: too deep to encode). Both are
    the values replay derives from the row's JSON."""
    meta = rec.metadata
    team = meta.get("team") if isinstance(meta, dict) else None
    cache_team: str | None = None
    try:  # metadata the row cannot hold as it is (a marker is logged instead): NULL, replay reads it
        if meta is None or orjson.dumps(meta):
            cache_team = "" if team is None else team if isinstance(team, str) else None
    except (TypeError, ValueError, RecursionError):
        pass
    key = None
    logged_key = rec.cache_key if rec.body_mode != "none" else None
    if rec.cache is None and logged_key is None:
        body = request_body
        ok = isinstance(body, dict) and "unparsed" not in body
        try:  # a body the row cannot hold as it is (encode_row logs a marker instead): NULL, replay reads it
            key = exact_key(rec.route or "", body) if ok and orjson.dumps(body) else ""
        except (TypeError, ValueError, RecursionError):
            key = None
    return {"cache_team": cache_team, "exact_key": key}


def list_scalars(plan: Sequence[str] | None, attempts: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    """The scalar columns that stand for the ``plan``/``attempts`` lists in the dashboards'
    counts (``attempt_count``, ``first_planned``, ``first_attempt_failed``): the same facts,
    readable without decoding a list. Attempts are those made: an entry for a target that was
    skipped (its breaker open: ``error`` "skipped: ...", :data:`.schema.SKIPPED`) called no
    upstream — as ``schema.LIST_SCALARS_SQL`` derives them for rows written before the columns."""
    made = [a for a in attempts or () if not (a.get("error") or "").startswith(SKIPPED)]
    return {
        "attempt_count": len(made),
        "first_planned": plan[0] if plan else None,
        "first_attempt_failed": bool(made) and made[0].get("error") is not None,
    }


# columns copied as they are from the record by :func:`minimal_row`
_SCALARS = tuple(
    name
    for name, typ, _ in COLUMNS
    if name in RequestRecord.__slots__ and typ in ("VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMPTZ")
)
