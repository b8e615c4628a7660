"""llmgw — an LLM gateway whose policies you replay against your own traffic.

The public Python surface (what notebooks use)::

    from llmgw_kernel import load_policy, open_log, replay
    policy = load_policy("policies/live.yaml")
    con = open_log("llmgw-data")          # DuckDB; view `requests`, safe while serving
    result = replay(policy, con)           # .decisions, .summary, .compare_to_log()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Policy",
    "PolicyError",
    "ReplayResult",
    "__version__",
    "load_policy",
    "open_log",
    "plan_route",
    "replay",
]

# Imported on first use so `llmgw serve` starts fast and small.
_LAZY = {
    "Policy": "llmgw_kernel.policy.model",
    "PolicyError": "llmgw_kernel.policy.load",
    "load_policy": "llmgw_kernel.policy.load",
    "open_log": "llmgw_kernel.log.reader",
    "replay": "llmgw_kernel.replay",
    "ReplayResult": "llmgw_kernel.replay",
    "plan_route": "llmgw_kernel.decisions.routing",
}

if TYPE_CHECKING:
    from .decisions.routing import plan_route
    from .log.reader import open_log
    from .policy.load import PolicyError, load_policy
    from .policy.model import Policy
    from .replay import ReplayResult, replay


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmgw_kernel' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
