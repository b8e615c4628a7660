"""The policy document: model, loading and validation, lifecycle (promote / rollback / diff)."""

from .load import PolicyError, canonical_policy, load_policy, policy_version, validate_policy
from .model import LogSettings, Policy, Provider, Route, ServerSettings, Target

__all__ = [
    "LogSettings",
    "Policy",
    "PolicyError",
    "Provider",
    "Route",
    "ServerSettings",
    "Target",
    "canonical_policy",
    "load_policy",
    "policy_version",
    "validate_policy",
]
