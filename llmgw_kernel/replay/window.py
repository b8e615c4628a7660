"""The logged window a replay reads: the ``requests`` view's rows in ``[since, until)``, oldest first."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..log.reader import open_log
from .cache_stage import embeddings_column

if TYPE_CHECKING:
    import duckdb

_LOG_COLUMNS = (
    "request_id", "ts", "endpoint", "route", "policy_version", "plan", "target", "status", "outcome",
    "error_type", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "stream",
    "attempts", "metadata", "request_body", "api", "ts_end", "key_id", "temperature", "cache", "cache_source",
    "cache_control", "cache_ns_header", "cache_key", "cache_context", "cache_stored_ts", "cache_features",
    "embedding", "embedding_model", "cost_usd", "team", "end_user", "key_version", "admission",
    "admitted_ts", "settled_ts", "reserved_usd", "reserved_tokens", "reserved_prompt_tokens", "cached_tokens",
)  # fmt: skip


def _window_sql(
    since: datetime | str | None, until: datetime | str | None, where: str | None = None, params_: Any = ()
) -> tuple[str, list[Any]]:
    clauses: list[str] = [f"({where})"] if where else []
    params: list[Any] = list(params_)
    if since is not None:
        clauses.append("ts >= CAST(? AS TIMESTAMPTZ)")
        params.append(since)
    if until is not None:
        clauses.append("ts < CAST(? AS TIMESTAMPTZ)")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def load_window(
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str], since=None, until=None, where=None, params=()
) -> dict[str, list[Any]]:
    """The logged requests of a window, oldest first: column name → Python values (None = NULL).

    ``where`` is an extra SQL predicate over the ``requests`` view (with ``?`` placeholders
    bound from ``params``): it selects a subset, e.g. one partition of a partitioned replay."""
    con = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    where, params = _window_sql(since, until, where, params)
    present = {r[0] for r in con.execute("DESCRIBE requests").fetchall()}
    cols = ", ".join(c if c in present else f"NULL AS {c}" for c in _LOG_COLUMNS)  # logs older than a column
    rows = con.execute(f"SELECT {cols} FROM requests{where} ORDER BY ts, request_id", params).fetchall()
    window = {name: [r[i] for r in rows] for i, name in enumerate(_LOG_COLUMNS)}
    window["embedding"] = embeddings_column(window["embedding"])
    return window
