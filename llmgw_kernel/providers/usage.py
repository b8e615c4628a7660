"""The one check of an upstream's reported usage before the gateway prices, settles or logs it.

Whatever the adapter (OpenAI, Anthropic, Gemini, a pass-through), the pipeline reads the usage
an upstream reported through :func:`checked_usage`. A count that is not a whole number from 0
to :data:`MAX_TOKENS` (negative, fractional, a string, a bool, absurdly large) is a provider
fault: priced, it would be a negative or absurd cost (and a negative Prometheus counter
increment, which raises). Such a usage is treated as unknown, exactly as a missing one is (a
stream's tokens are then counted by the gateway and the row says ``usage_source =
estimated``), so the request is still answered and logged once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the largest token count taken as real (2**31 - 1: no single request comes near it)
MAX_TOKENS = 2**31 - 1

_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def checked_usage(usage: Any) -> dict[str, Any] | None:
    """``usage`` if every count it reports is valid (absent counts are fine), else None (unknown).

    >>> checked_usage({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    {'prompt_tokens': 3, 'completion_tokens': 2, 'total_tokens': 5}
    >>> checked_usage({"prompt_tokens": -50, "completion_tokens": 2}) is None
    True
    >>> checked_usage({"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 1.5}}) is None
    True
    """
    if not isinstance(usage, dict) or not usage:
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    counts = [usage.get(name) for name in _COUNTS] + [cached]
    return usage if all(c is None or _valid_count(c) for c in counts) else None


def _valid_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS
