"""Example rule function for a route: ``rule: tiers:route_by_tier`` (see docs/routing.md).

The gateway loads this file from the policy file's folder (not from ``sys.path``) and calls
``route_by_tier(ctx)`` for every request on the route, live and in replay alike. The
function must be pure (no clock, no randomness, no I/O): replay calls it again over the log
and must get the same answer. It returns target ids (``"provider/model"``) declared by the
route — in its ``targets`` or its rules' targets, listed in ``ctx.targets`` — in the order
to try them, or a ``RouteChoice`` that also says why. If it raises or returns something
else, the route's declared targets are used and the reason says so.

Here the route's first declared target is the premium model and the last the budget one:
gold customers and big prompts get premium first; everyone else gets budget first, with
premium as the fallback.
"""

from __future__ import annotations

from llmgw_kernel.decisions import RouteChoice, RouteContext

BIG_PROMPT_TOKENS = 2000


def route_by_tier(ctx: RouteContext) -> RouteChoice:
    premium, budget = ctx.targets[0], ctx.targets[-1]
    tier = str(ctx.metadata.get("tier", "free"))
    if tier == "gold":
        return RouteChoice([premium, budget], "tier gold: premium first")
    if ctx.prompt_tokens > BIG_PROMPT_TOKENS:
        why = f"prompt ~{ctx.prompt_tokens} tokens > {BIG_PROMPT_TOKENS}: premium first"
        return RouteChoice([premium, budget], why)
    return RouteChoice([budget, premium], f"tier {tier}: budget first, premium as fallback")
