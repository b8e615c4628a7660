"""The request log's columns: one row per request, whatever its outcome.

Rows are written as Parquet segments (see :mod:`.writer`); later columns are added at the
end; a segment lacking a later column is rewritten with it (NULL) before it is read
(:func:`.segments.ensure_columns`).
"""

from __future__ import annotations

# (name, DuckDB type, meaning). The writer produces exactly these columns, in this order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("request_id", "VARCHAR", "gateway id, unique per request: the x-request-id the client received"),
    ("client_request_id", "VARCHAR", "the client's own x-request-id, if it sent one (x-client-request-id)"),
    ("ts", "TIMESTAMPTZ", "when the request arrived (UTC)"),
    ("ts_end", "TIMESTAMPTZ", "when the response finished or the client left (UTC)"),
    (
        "endpoint",
        "VARCHAR",
        "chat.completions | embeddings | cache.check (the gateway's check of a sampled semantic hit: a cost charged "
        "to the hit's budgets, not a client request)",
    ),
    ("route", "VARCHAR", "the model name the client sent"),
    ("policy_version", "VARCHAR", "content version of the policy that served it"),
    ("stream", "BOOLEAN", "stream: true requested"),
    ("status", "INTEGER", "HTTP status sent to the client"),
    (
        "outcome",
        "VARCHAR",
        "ok | client_error | limited (budget/rate) | upstream_error | timeout | no_target | abandoned | error",
    ),
    ("error_type", "VARCHAR", "OpenAI error type / code when not ok"),
    ("error_message", "VARCHAR", "error message sent to the client (secrets scrubbed)"),
    ("plan", "VARCHAR[]", "targets in the order routing chose to try them"),
    ("route_reason", "VARCHAR", "why routing chose that order"),
    ("target", "VARCHAR", "provider/model that served the response"),
    ("provider", "VARCHAR", "provider name of the served target"),
    ("upstream_model", "VARCHAR", "model name sent to the provider"),
    (
        "attempts",
        "STRUCT(target VARCHAR, status INTEGER, latency_ms DOUBLE, error VARCHAR)[]",
        "every upstream attempt in order",
    ),
    ("latency_ms", "DOUBLE", "arrival to last byte sent"),
    ("ttft_ms", "DOUBLE", "arrival to first content byte sent (streams)"),
    ("upstream_ms", "DOUBLE", "latency of the attempt that served it"),
    ("prompt_tokens", "BIGINT", "usage.prompt_tokens"),
    ("completion_tokens", "BIGINT", "usage.completion_tokens"),
    ("total_tokens", "BIGINT", "usage.total_tokens"),
    ("cached_tokens", "BIGINT", "prompt_tokens_details.cached_tokens: prompt tokens from the provider's cache"),
    ("usage_source", "VARCHAR", "upstream | estimated (counted by the gateway: the provider sent none) | none"),
    ("metadata", "JSON", "request metadata (body `metadata` or x-llmgw-metadata)"),
    ("user_agent", "VARCHAR", "client User-Agent"),
    ("body_mode", "VARCHAR", "full | redacted | hashed | none (policy log.bodies)"),
    ("request_hash", "VARCHAR", "SHA-256 of the canonical request (model and metadata excluded)"),
    ("request_body", "JSON", "the request as received (bodies: full; redacted: after input guardrails)"),
    ("response_hash", "VARCHAR", "SHA-256 of the response body"),
    ("response_body", "JSON", "the response as answered (streams: reassembled message) (bodies: full | redacted)"),
    ("request_bytes", "INTEGER", "request body size"),
    ("response_bytes", "INTEGER", "response body size"),
    ("api", "VARCHAR", "inbound API the client used: openai | anthropic (/v1/messages) | responses | completions"),
    ("retries", "INTEGER", "tries that repeated a target already tried (route retry)"),
    ("backoff_ms", "DOUBLE", "time slept between retries (backoff or Retry-After)"),
    ("key_id", "VARCHAR", "the client's key: sha256: + 12 hex of the presented credential (never the key)"),
    ("temperature", "DOUBLE", "the request's temperature, if set"),
    ("cost_usd", "DOUBLE", "tokens x the policy's price of the target that served (0 for cache hits; NULL: unpriced)"),
    ("cache", "VARCHAR", "hit | semantic-hit | miss | bypass (why: cache_reason); NULL: no cache on the route"),
    (
        "cache_reason",
        "VARCHAR",
        "no-cache | no-store | temperature | semantic: below threshold | rejected: <why> | ...",
    ),
    ("cache_similarity", "DOUBLE", "cosine similarity of the nearest semantic entry"),
    ("cache_source", "VARCHAR", "request_id whose answer a hit served"),
    ("saved_usd", "DOUBLE", "what a hit saved: the source answer's tokens at its target's price"),
    ("cache_control", "VARCHAR", "the x-llmgw-cache request header: no-cache | no-store"),
    ("cache_ns_header", "VARCHAR", "the x-llmgw-cache-namespace request header"),
    ("cache_namespace", "VARCHAR", "the namespace the request read and wrote"),
    ("cache_key", "VARCHAR", "exact-cache key before scoping: SHA-256 of route + canonical request"),
    ("cache_context", "VARCHAR", "semantic group: hash of the request minus the last user turn"),
    (
        "cache_lookup_ts",
        "DOUBLE",
        "epoch seconds when the cache was consulted: its contents then (visibility: arrival)",
    ),
    ("cache_stored_ts", "DOUBLE", "epoch seconds when the answer entered the cache (NULL: not stored)"),
    ("cache_features", "JSON", "verification features of the embedded text (token hashes)"),
    ("embedding", "FLOAT[]", "embedding of the last user turn (semantic cache), so replay never recomputes it"),
    ("embedding_model", "VARCHAR", "the model that made the embedding"),
    ("team", "VARCHAR", "the virtual key's team (open mode: metadata.team)"),
    (
        "end_user",
        "VARCHAR",
        "who the request counts for in user budgets: the key's user, else metadata.user / body user",
    ),
    ("key_version", "INTEGER", "version of the key's settings in force (budgets, limits, models)"),
    ("admission", "VARCHAR", "ok | budget_exceeded | rate_limited (NULL: no budget or rate limit applied)"),
    ("admission_reason", "VARCHAR", "the limit that refused, in words"),
    ("budget_flags", "VARCHAR[]", "soft budgets the request exceeded (allowed, flagged)"),
    ("admitted_ts", "DOUBLE", "epoch seconds of the admission decision"),
    ("settled_ts", "DOUBLE", "epoch seconds when the reservation was settled at the actual cost"),
    ("reserved_usd", "DOUBLE", "worst-case cost reserved at admission"),
    ("reserved_tokens", "BIGINT", "tokens reserved at admission (prompt estimate + max tokens)"),
    ("reserved_prompt_tokens", "BIGINT", "the prompt's upper bound within reserved_tokens (the rest is max tokens)"),
    ("origin", "VARCHAR", "NULL: served by this gateway; import:<format>: written by `llmgw import` (docs/import.md)"),
    (
        "guardrails",
        "STRUCT(stage VARCHAR, name VARCHAR, rule VARCHAR, type VARCHAR, action VARCHAR, count INTEGER, "
        "score DOUBLE)[]",
        "guardrail verdicts: per stage, check, rule, type and action, the findings' count and top confidence "
        "(never the value); NULL: nothing fired",
    ),
    ("cache_threshold", "DOUBLE", "the semantic threshold the decision applied (max_false_hit_rate: the learned one)"),
    (
        "cache_verify",
        "VARCHAR",
        "the answer check this request started (max_false_hit_rate): shadow (a miss compared with its nearest "
        "entry) | sampled (a hit also asked upstream) | check (the check's own row); outcomes: "
        "<data-dir>/cache-outcomes.jsonl",
    ),
    (
        "route_draw",
        "TINYINT",
        "the weighted draw that routed it (docs/routing.md): 2 = the splitmix64 fold; 1 (or NULL: a row written "
        "before the column) = blake2b-64 of version\\0key",
    ),
    # scalars of the lists above, so a query counting attempts or first choices skips decoding the lists
    # (NULL: a row written before the columns; its lists still say it)
    # (an attempts entry whose error starts with SKIPPED was not made: its target was skipped, e.g. its
    # breaker open; rows written before 2026-12-06 count those entries too: docs/log.md)
    (
        "attempt_count",
        "SMALLINT",
        "upstream attempts made: the attempts entries not skipped (0: none; skipped: error 'skipped: ...')",
    ),
    ("first_planned", "VARCHAR", "plan[1]: the first target routing planned (NULL: no plan)"),
    (
        "first_attempt_failed",
        "BOOLEAN",
        "the first upstream attempt made (skipped entries passed over) failed (false: it succeeded or none was made)",
    ),
    # what replay's cache would otherwise decode from the JSON columns of every row (record.replay_scalars);
    # NULL: a row written before the columns (replay decodes the JSON then)
    (
        "cache_team",
        "VARCHAR",
        "metadata.team as the cache's namespace reads it, when a string ('' none; NULL also any other "
        "value, read from metadata)",
    ),
    (
        "exact_key",
        "VARCHAR",
        "for a row no cache saw (cache and cache_key NULL): the exact-cache key of (route, the logged request "
        "body), '' when that body is not a JSON object; NULL for any other row",
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c[0] for c in COLUMNS)

SKIPPED = "skipped:"
"""How the ``error`` of an ``attempts`` entry for a target that was skipped, not called, starts
(its breaker open, or its provider unavailable: ``proxy/attempts.py``): not an upstream attempt."""

SKIPPED_SQL = f"coalesce(starts_with(x.error, '{SKIPPED}'), false)"
"""An ``attempts`` entry ``x`` was skipped (:data:`SKIPPED`), as SQL."""

_MADE = f"list_filter(attempts, lambda x: NOT {SKIPPED_SQL})"

LIST_SCALARS_SQL: dict[str, str] = {
    "attempt_count": f"CAST(coalesce(len({_MADE}), 0) AS SMALLINT)",
    "first_planned": "plan[1]",
    "first_attempt_failed": f"coalesce({_MADE}[1].error IS NOT NULL, false)",
}
"""Each list scalar column (``attempt_count``, ``first_planned``, ``first_attempt_failed``) as SQL
over the lists it stands for: its value for a row written before the columns (NULL there). The
attempts counted are those made (entries skipped, :data:`SKIPPED`, passed over). The
writer's rows hold the same values (:func:`.record.list_scalars`; rows it wrote before
2026-12-06 counted the skipped entries too, docs/log.md). A reader that wants to skip
the lists reads the column where it is set and this only where it is NULL, as two scans (DuckDB
reads every column a query names, so ``coalesce(attempt_count, len(attempts))`` still decodes
``attempts`` for every row; ``attempt_count IS NULL`` as a scan's filter skips every row group
written with the columns by its statistics)."""

ROUTE_DRAW_V1 = 1
"""``route_draw`` of a row routed by the first weighted draw (blake2b-64 of ``version\\0key``), the
proxy's until 2026-12-05; a NULL ``route_draw`` (a row written before the column) means this."""
ROUTE_DRAW = 2
"""``route_draw`` of a row routed by the current weighted draw (the splitmix64 fold): every row
written now. The functions are :data:`llmgw_kernel.decisions.routing.DRAWS`."""

TS_MIN = 0.0
"""The earliest time a row may hold (epoch seconds): 1970-01-01T00:00:00Z."""
TS_MAX = 4_102_444_800.0
"""The first time a row may not hold (epoch seconds): 2100-01-01T00:00:00Z. Every time column
(``ts``, ``ts_end``) lies in ``[TS_MIN, TS_MAX)``: a request's time, never a sentinel. Beyond
that range DuckDB refuses some values (epoch 1e300), Python's ``datetime`` others (year -1199),
and a reader that buckets time would span centuries."""


def time_error(value: object, name: str = "ts") -> str | None:
    """Why ``value`` cannot be the time column ``name`` of a row (None: it can)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name}: {type(value).__name__} is not epoch seconds"
    if not TS_MIN <= value < TS_MAX:  # NaN fails this too
        return f"{name}: {value!r} is outside 1970-01-01 .. 2100-01-01 (epoch seconds {TS_MIN:.0f} .. {TS_MAX:.0f})"
    return None
