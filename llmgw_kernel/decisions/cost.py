"""What a request costs: logged tokens x the policy's prices (USD per 1M tokens).

>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"o": {"kind": "demo"}},
...                  "routes": {"m": {"targets": [{"provider": "o", "model": "gpt-4o"}]}},
...                  "pricing": {"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}}})
>>> cost_usd(p, "o/gpt-4o", 1000, 500), cost_usd(p, "o/unpriced", 1000, 500)
(0.0075, None)

A target without a price has an unknown cost (None), never 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..policy.conditions import Price
    from ..policy.model import Policy


def price_of(policy: Policy, target_id: str) -> Price | None:
    """``pricing["provider/model"]``, else ``pricing["model"]``, else None (unknown)."""
    if target_id in policy.pricing:
        return policy.pricing[target_id]
    model = target_id.split("/", 1)[1] if "/" in target_id else target_id
    return policy.pricing.get(model)


def cost_usd(
    policy: Policy, target_id: str | None, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """Cost of one answer by ``target_id`` (None: unpriced target or no token counts)."""
    if not target_id or (prompt_tokens is None and completion_tokens is None):
        return None
    price = price_of(policy, target_id)
    if price is None:
        return None
    return round(((prompt_tokens or 0) * price.input_per_1m + (completion_tokens or 0) * price.output_per_1m) / 1e6, 9)
