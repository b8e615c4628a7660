"""The guardrail stage in the pipeline: input checks before a request is served, output
checks on JSON answers and cache hits (streams: :class:`~llmgw_kernel.guardrails.stream.StreamGuard`
in ``pipeline._serve_stream``), verdicts to the log and metrics.

Checks run on the event loop when the text they read (the request body, the answer) is at
most :data:`THREAD_ABOVE_BYTES`, and in a worker thread above it, so one large prompt or
answer never holds the loop for long: the thread still needs the GIL, but the loop gets it
back every switch interval (5 ms) instead of waiting for the whole check. Streams are
checked on the loop, a bounded window at a time (:mod:`llmgw_kernel.guardrails.stream`).
docs/guardrails.md#cost has the measurements behind the threshold.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from ..guardrails.request import RequestGuard
from ..guardrails.stage import GuardrailFailure
from ..guardrails.verdicts import Blocked
from ..log.record import RequestRecord
from .errors import guardrail_error

#: bodies larger than this are checked in a worker thread (see the module docstring): the
#: input stage (pii + injection, en+vi) costs ~0.45 ms for a typical chat request and ~1.5 ms
#: for a 4 KB prompt, linear in the size (benchmarks/guardrails_stage.py), so nothing checked
#: on the loop takes more than ~1.5 ms
THREAD_ABOVE_BYTES = 4096


async def check_input(
    guard: RequestGuard, rec: RequestRecord, body: dict[str, Any], endpoint: str, body_meta: Any, redacted: bool
) -> None:
    """Input checks over ``body`` (rewritten in place). A ``block`` raises the 400. With
    ``log.bodies: redacted`` (``redacted``) the log keeps the request as it was sent on — a
    blocked one with what the checks found replaced — and only from here on (``body_mode``)."""
    try:
        if len(rec.request_raw) > THREAD_ABOVE_BYTES:
            changed = await asyncio.to_thread(guard.check_request, body, endpoint)
        else:
            changed = guard.check_request(body, endpoint)
    except (Blocked, GuardrailFailure) as exc:
        if isinstance(exc, Blocked) and redacted:
            guard.redact_blocked(body, endpoint)
            _log_body(rec, body, body_meta)
        raise guardrail_error(exc) from None
    if redacted:
        rec.body_mode = "redacted"
        if changed:
            _log_body(rec, body, body_meta)


def _log_body(rec: RequestRecord, body: dict[str, Any], body_meta: Any) -> None:
    """The request as the log keeps it under ``bodies: redacted`` (its ``metadata`` as sent)."""
    rec.request_raw = orjson.dumps(body if body_meta is None else {**body, "metadata": body_meta})
    rec.body_mode = "redacted"


async def check_output(guard: RequestGuard, raw: bytes) -> bytes:
    """Output checks over a JSON chat completion (an upstream's, or a cache hit's): the body
    to send, or the 400 of a ``block``."""
    try:
        if len(raw) > THREAD_ABOVE_BYTES:
            return await asyncio.to_thread(guard.check_completion, raw)
        return guard.check_completion(raw)
    except (Blocked, GuardrailFailure) as exc:
        raise guardrail_error(exc) from None
