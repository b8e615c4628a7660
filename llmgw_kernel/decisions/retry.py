"""Retry decisions: whether a failed attempt is retried or falls back, and how long to wait.

Pure functions of (policy settings, request identity, the failure), used by the live proxy
(:mod:`llmgw_kernel.proxy.attempts`) and available to replay. The backoff is exponential
with *full jitter* (uniform in ``[0, min(cap, base * 2**(retry-1))]``), and the uniform
number is drawn from a hash of (policy version, request id, target, retry), so a replay of
the same request under the same policy waits exactly as long as the live proxy did.

>>> backoff_ms("p-1", "req_1", "a/m", 1, base_ms=100, cap_ms=2000) == backoff_ms("p-1", "req_1", "a/m", 1, 100, 2000)
True
>>> 0 <= backoff_ms("p-1", "req_1", "a/m", 3, base_ms=100, cap_ms=2000) <= 400
True
>>> retry_after_ms("2")
2000.0
>>> is_context_window_error(400, "context_length_exceeded", "")
True
"""

from __future__ import annotations

import hashlib
import time
from email.utils import parsedate_to_datetime

#: words providers use when a prompt does not fit the model's context window
_CONTEXT_PHRASES = (
    "context length", "context_length", "context window", "maximum context", "too many tokens",
    "prompt is too long", "input is too long",
)  # fmt: skip
#: statuses that carry a meaningful Retry-After
RETRY_AFTER_STATUSES = frozenset({429, 503})


def jitter(policy_version: str, request_id: str, target: str, retry: int) -> float:
    """A uniform number in [0, 1) that depends only on its arguments."""
    key = f"{policy_version}\x00{request_id}\x00{target}\x00{retry}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def backoff_ms(policy_version: str, request_id: str, target: str, retry: int, base_ms: float, cap_ms: float) -> float:
    """The sleep before retry number ``retry`` (1 = the first retry) of ``target``: full jitter."""
    ceiling = min(cap_ms, base_ms * 2 ** max(retry - 1, 0))
    return jitter(policy_version, request_id, target, retry) * ceiling


def retry_after_ms(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (delay-seconds or an HTTP date) in milliseconds, or None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0) * 1000  # a date in the past: retry now


def is_context_window_error(status: int | None, code: str | None, message: str) -> bool:
    """A 400 saying the prompt does not fit this model: a larger-context target may serve it."""
    if status not in (400, 413):
        return False
    if code == "context_length_exceeded":
        return True
    text = message.lower()
    return any(p in text for p in _CONTEXT_PHRASES)


def retry_delay_ms(backoff: float, retry_after: float | None, retry_after_cap_ms: float) -> float | None:
    """How long to wait before retrying: the backoff, or the server's Retry-After if longer.

    None: the server asked for more than ``retry_after_cap_ms`` — leave this target.
    """
    if retry_after is None:
        return backoff
    if retry_after > retry_after_cap_ms:
        return None
    return max(backoff, retry_after)


__all__ = [
    "RETRY_AFTER_STATUSES",
    "backoff_ms",
    "is_context_window_error",
    "jitter",
    "retry_after_ms",
    "retry_delay_ms",
]
