"""Log rows written as the proxy writes them, for tests that need a log with particular rows
(semantic hits at chosen margins, hashed bodies, ...): one chat-completions ``RequestRecord``
with its request body, appended through a real ``LogWriter`` by the caller."""

from __future__ import annotations

import json
from typing import Any

from llmgw_kernel.log.record import RequestRecord


def chat_record(rid: str, ts: float, prompt: str, body_mode: str, cache: str, **extra: Any) -> RequestRecord:
    """A served (200, ok) request to route ``chat`` asking ``prompt``, logged with ``body_mode``
    and cache outcome ``cache``; ``extra`` sets any other field (``team``, ``cost_usd``,
    ``cache_similarity``, ...)."""
    rec = RequestRecord(rid, ts, "chat.completions")
    rec.route, rec.status, rec.outcome, rec.latency_ms, rec.cache = "chat", 200, "ok", 1.0, cache
    rec.body_mode = body_mode
    rec.request_raw = json.dumps({"model": "chat", "messages": [{"role": "user", "content": prompt}]}).encode()
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec
