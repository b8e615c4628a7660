"""``llmgw route explain``: which targets a request would try, in which order, and why.

>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"d": {"kind": "demo"}},
...     "routes": {"m": {"targets": [{"provider": "d", "model": "a"}, {"provider": "d", "model": "b"}]}}})
>>> print(explain_route(p, "m").splitlines()[3])
  1. d/a  (first attempt)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..policy.model import Policy
from .context import RouteContext
from .routing import plan_route, route_spec


def explain_route(
    policy: Policy,
    model: str,
    metadata: Mapping[str, Any] | None = None,
    user: str | None = None,
    prompt_tokens: int = 0,
    request_id: str = "req_explain",
) -> str:
    """A human-readable account of :func:`plan_route` for one hypothetical request."""
    spec = route_spec(policy, model)
    ctx = RouteContext(request_id, model, dict(metadata or {}), user, prompt_tokens)
    plan = plan_route(policy, model, request_id, ctx)
    where = f", {policy.source}" if policy.source else ""
    meta = json.dumps(dict(metadata or {}), sort_keys=True)
    lines = [
        f"route {model!r} (policy {policy.version}{where})",
        f"request: id={request_id} user={user or '-'} metadata={meta} prompt_tokens={prompt_tokens}",
        "targets, in the order they are tried:",
    ]
    for i, target in enumerate(plan.targets):
        lines.append(f"  {i + 1}. {target}  ({'first attempt' if i == 0 else 'fallback'})")
    lines.append("why:")
    lines += [f"  - {part}" for part in plan.reason.split(" | ")]
    if "weighted draw" in plan.reason:
        lines.append(
            "  (weighted draws hash (policy version, "
            + (f"{spec.sticky} value" if spec.sticky else "request id")
            + "): change --request-id"
            + (f" or the {spec.sticky} value" if spec.sticky else "")
            + " to see other draws)"
        )
    lines += _execution(spec)
    return "\n".join(lines)


def _execution(spec: Any) -> list[str]:
    """Retry / timeout / breaker settings of the route, if the policy has them."""
    out = []
    for key in ("retry", "timeout_ms", "deadline_ms", "breaker"):
        value = getattr(spec, key, None)
        if value is not None:
            shown = value.model_dump() if hasattr(value, "model_dump") else value
            out.append(f"  {key}: {shown}")
    return ["execution:", *out] if out else []
