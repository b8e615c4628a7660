"""What a request costs: logged tokens x the price of the target (USD per 1M tokens).

The price is the policy's ``pricing`` entry (``provider/model``, then ``model``) when there is
one, else the built-in table (``llmgw_kernel/pricing/prices.yaml``), else unknown.

>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"o": {"kind": "demo"}},
...                  "routes": {"m": {"targets": [{"provider": "o", "model": "gpt-4o"}]}},
...                  "pricing": {"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}}})
>>> cost_usd(p, "o/gpt-4o", 1000, 500), cost_usd(p, "o/unpriced", 1000, 500)
(0.0075, None)
>>> price_source(p, "o/gpt-4o"), price_source(p, "o/gpt-4o-mini")[:6], price_source(p, "o/unpriced")
('policy', 'table:', 'none')
>>> cost_usd(p, "o/gpt-4o-mini", 1000, 0, cached_tokens=800)  # 200 x 0.15 + 800 x 0.075 per 1M
9e-05

A target without a price has an unknown cost (None), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..policy.conditions import MAX_PRICE_PER_1M
from ..pricing.table import ResolvedPrice, resolve
from ..providers.usage import MAX_TOKENS

if TYPE_CHECKING:
    from ..policy.conditions import Price
    from ..policy.model import Policy


MAX_COST_USD = 2 * MAX_TOKENS * MAX_PRICE_PER_1M / 1e6
"""The most one request can cost (about USD 4.29e9): its most tokens (``MAX_TOKENS`` prompt and
completion) at the highest price a policy may set. What the gateway logs never exceeds it, an
import refuses a cost above it (``importing/values.py:usd``), and it keeps a cost in whole
nano-dollars within a 64-bit integer (4.29e18 < 9.22e18) where budgets count spend."""


def real_cost_sql(column: str) -> str:
    """SQL true where ``column`` holds a cost a request can have: finite and within
    :data:`MAX_COST_USD` (NULL for NULL; false for NaN, infinities and an import's absurd cost).

    >>> real_cost_sql("cost_usd")
    'abs(cost_usd) <= 4294967294.0'
    """
    return f"abs({column}) <= {MAX_COST_USD!r}"


def price_of(policy: Policy, target_id: str) -> Price | None:
    """The policy's own price: ``pricing["provider/model"]``, else ``pricing["model"]``, else None.

    The built-in table is not consulted here; ``resolve_price`` does both.
    """
    if target_id in policy.pricing:
        return policy.pricing[target_id]
    model = target_id.split("/", 1)[1] if "/" in target_id else target_id
    return policy.pricing.get(model)


_MEMO_MAX = 4096  # distinct targets remembered per policy (ids come from logs too)
_UNSET = object()


def resolve_price(policy: Policy, target_id: str) -> ResolvedPrice | None:
    """The policy's price, else the built-in table's, else None (unknown); remembered per
    policy object (a policy never changes once validated: a new one is a new object)."""
    memo = policy.__pydantic_private__["_prices"]  # type: ignore[index]  # 25x faster than policy._prices
    price = memo.get(target_id, _UNSET)
    if price is _UNSET:
        price = resolve(policy.pricing, target_id)
        if len(memo) < _MEMO_MAX:
            memo[target_id] = price
    return price  # type: ignore[return-value]


def price_source(policy: Policy, target_id: str) -> str:
    """Where the price of ``target_id`` comes from: "policy", "table:<version>" or "none"."""
    price = resolve_price(policy, target_id)
    return price.source if price else "none"


def cached_tokens_of(usage: Mapping[str, Any] | None) -> int | None:
    """Cached prompt tokens of an OpenAI-format usage (``prompt_tokens_details.cached_tokens``)."""
    details = (usage or {}).get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return cached if isinstance(cached, int) else None


def cost_usd(
    policy: Policy,
    target_id: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int | None = None,
) -> float | None:
    """Cost of one answer by ``target_id`` (None: unpriced target or no token counts).

    ``cached_tokens`` are the part of ``prompt_tokens`` served from the provider's prompt cache
    (OpenAI counts them inside ``prompt_tokens``); they are billed at the cached-input price
    where one is known, else at the input price.
    """
    if not target_id or (prompt_tokens is None and completion_tokens is None):
        return None
    price = resolve_price(policy, target_id)
    if price is None:
        return None
    prompt = prompt_tokens or 0
    return round(tokens_usd(price, prompt, min(max(cached_tokens or 0, 0), prompt), completion_tokens or 0), 9)


def tokens_usd(price: ResolvedPrice, prompt: Any, cached: Any, completion: Any) -> Any:
    """The price of ``prompt`` input tokens (``cached`` of them at the cached-input price, when
    there is one) and ``completion`` output tokens, in USD, before rounding. Numbers or float64
    arrays alike (replay prices whole columns with it: ``replay/costs_columnar.py``), the same
    operations in the same order, so an array's values equal the scalar ones bit for bit."""
    cached_rate = price.input_per_1m if price.cached_input_per_1m is None else price.cached_input_per_1m
    total = (prompt - cached) * price.input_per_1m + cached * cached_rate
    total = total + completion * price.output_per_1m
    return total / 1e6


def worst_case_usd(
    policy: Policy, target_id: str | None, prompt_tokens: int | None, max_tokens: int | None
) -> float | None:
    """The most one request can cost, for budget reservations: the prompt at the input price plus
    ``max_tokens`` at the output price (None: unpriced target, or no prompt count or ``max_tokens``)."""
    if not target_id or prompt_tokens is None or max_tokens is None:
        return None
    price = resolve_price(policy, target_id)
    if price is None:
        return None
    return round((prompt_tokens * price.input_per_1m + max_tokens * price.output_per_1m) / 1e6, 9)
