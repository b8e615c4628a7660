"""The request page's data: one request looked up by its id — the gateway's ``request_id``
(the ``x-request-id`` / ``x-llmgw-request-id`` the client received) or the client's own
``x-request-id`` (``client_request_id``: what a customer pastes into a ticket) — with
everything the log says about why it ended as it did.

The lookup is two narrow scans, whatever the log's size: the first reads only the id columns
and ``ts`` of every row (``request_id = $id OR client_request_id = $id``, a bound parameter:
an id is matched literally, never spliced into SQL), the second reads the one row found by
its ``ts`` — the segments' min/max statistics on ``ts`` skip every other row group — with its
bodies cut to :data:`MAX_BODY_CHARS` in DuckDB (a body of megabytes never reaches Python).
The time window and filters of the other pages do not apply: a request is found wherever it
is in the log. An id longer than :data:`MAX_ID_CHARS` is refused without a query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..log.schema import SKIPPED

if TYPE_CHECKING:
    from .context import Context

#: the longest id looked up (the gateway's are 28 characters; a client's x-request-id is
#: whatever it chose, usually a UUID): a longer one is refused, not queried
MAX_ID_CHARS = 200
#: matches listed (a client may reuse its own id); the newest is shown
MAX_MATCHES = 20
#: the most characters of a logged body sent to the page (then "…", with the body's size)
MAX_BODY_CHARS = 4000

_FIND_SQL = f"""
SELECT ts, request_id, request_id = $id AS by_gateway_id FROM requests
WHERE request_id = $id OR client_request_id = $id
ORDER BY by_gateway_id DESC, ts DESC LIMIT {MAX_MATCHES + 1}
"""

#: every column the page shows; the bodies cut in DuckDB, with their full length
_ROW_COLUMNS = (
    "request_id", "client_request_id", "ts", "ts_end", "endpoint", "api", "route", "policy_version", "stream",
    "status", "outcome", "error_type", "error_message", "plan", "route_reason", "target", "provider",
    "upstream_model", "attempts", "retries", "backoff_ms", "latency_ms", "ttft_ms", "upstream_ms",
    "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "usage_source", "cost_usd",
    "cache", "cache_reason", "cache_similarity", "cache_threshold", "cache_source", "saved_usd", "cache_namespace",
    "cache_control", "key_id", "key_version", "team", "end_user", "user_agent", "admission", "admission_reason",
    "budget_flags", "reserved_usd", "reserved_tokens", "guardrails", "body_mode", "request_hash", "response_hash",
    "request_bytes", "response_bytes", "origin",
)  # fmt: skip
_ROW_SQL = (
    "SELECT "
    + ", ".join(_ROW_COLUMNS)
    + f""",
  left(CAST(request_body AS VARCHAR), {MAX_BODY_CHARS}) AS request_body,
  length(CAST(request_body AS VARCHAR)) AS request_body_chars,
  left(CAST(response_body AS VARCHAR), {MAX_BODY_CHARS}) AS response_body,
  length(CAST(response_body AS VARCHAR)) AS response_body_chars
FROM requests WHERE ts = $ts AND request_id = $rid LIMIT 1
"""
)
_RANGE_SQL = "SELECT min(ts), max(ts), count(*) FROM requests"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One entry of the request's ``attempts``: a call made, or a target skipped (breaker open)."""

    target: str | None
    status: int | None
    latency_ms: float | None
    error: str | None

    @property
    def skipped(self) -> bool:
        return (self.error or "").startswith(SKIPPED)

    @property
    def result(self) -> str:
        if self.skipped:
            return "skipped"
        return "failed" if self.error else "ok"


@dataclass(frozen=True, slots=True)
class RequestData:
    asked: str  # the id asked for, '' for none
    refused: str | None = None  # why the id was not looked up
    row: dict[str, Any] | None = None  # the request shown (the newest match)
    matches: tuple[tuple[datetime, str], ...] = ()  # (ts, request_id) of every match, the shown one first
    more_matches: bool = False  # more than MAX_MATCHES matched
    log_range: tuple[datetime | None, datetime | None, int] | None = None  # (first, last, rows) when not found
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def found(self) -> bool:
        return self.row is not None


def check_id(asked: str) -> str | None:
    """Why ``asked`` is not looked up (None: it is)."""
    if len(asked) > MAX_ID_CHARS:
        return f"an id is at most {MAX_ID_CHARS} characters; this one has {len(asked):,}: not looked up"
    if any(ord(c) < 32 or ord(c) == 127 for c in asked):
        return "an id holds no control characters (a newline, a tab, ...): not looked up"
    return None


def find(con: Any, asked: str) -> RequestData:
    """Look ``asked`` up in the log on ``con`` (a DuckDB connection with the ``requests`` view)."""
    asked = asked.strip()
    if not asked:
        return RequestData("")
    refused = check_id(asked)
    if refused is not None:
        return RequestData(asked, refused=refused)
    found = con.execute(_FIND_SQL, {"id": asked}).fetchall()
    if not found:
        first, last, rows = con.execute(_RANGE_SQL).fetchone()
        return RequestData(asked, log_range=(first, last, int(rows)))
    ts, rid = found[0][0], found[0][1]
    cursor = con.execute(_ROW_SQL, {"ts": ts, "rid": rid})
    names = [d[0] for d in cursor.description]
    values = cursor.fetchone()
    row = dict(zip(names, values, strict=True)) if values is not None else None
    attempts = tuple(
        Attempt(a.get("target"), a.get("status"), a.get("latency_ms"), a.get("error"))
        for a in ((row or {}).get("attempts") or ())
    )
    matches = tuple((m[0], m[1]) for m in found[:MAX_MATCHES])
    return RequestData(asked, row=row, matches=matches, more_matches=len(found) > MAX_MATCHES, attempts=attempts)


def request_href(request_id: Any) -> str | None:
    """The request page's address for ``request_id`` (None for a missing one): the link in the
    overview's recent requests and the request page's own (not HTML-escaped)."""
    if not isinstance(request_id, str) or not request_id:
        return None
    return "/request?id=" + quote(request_id, safe="")


def request(ctx: Context, asked: str) -> RequestData:
    """The request ``asked`` (its gateway id or the client's id), from the log (answers shared
    for the queries' few seconds, as every page's)."""
    asked = asked.strip()
    if not asked or check_id(asked) is not None:
        return find(None, asked)
    return ctx.queries.answer(("request", asked), lambda con, _now: find(con, asked))


__all__ = [
    "MAX_BODY_CHARS",
    "MAX_ID_CHARS",
    "MAX_MATCHES",
    "Attempt",
    "RequestData",
    "check_id",
    "find",
    "request",
    "request_href",
]
