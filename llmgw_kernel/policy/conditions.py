"""Policy model pieces for conditional routing and pricing (see docs/routing.md).

A route may carry ``rules``: ``{when: {...}, targets: [...]}`` tried in order, first match
wins, the route's own ``targets`` being the default. ``when`` matchers all have to hold
(AND); a list value means "any of" (OR). ``pricing`` prices the model names sent to
providers, so replay can reprice logged token counts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool
OneOrMany = str | list[str]

#: ``sticky: user`` or ``sticky: metadata.<key>``
STICKY_PATTERN = r"^(user|metadata\.[A-Za-z0-9_.\-]+)$"
#: ``rule: module:function`` (module resolved in the policy file's folder)
RULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class When(_Frozen):
    """Conditions on a request; every matcher given must hold. A list means any of its values."""

    model: OneOrMany | None = Field(default=None, description="The model name the client requested")
    metadata: dict[str, Scalar | list[Scalar]] | None = Field(
        default=None,
        description="Request metadata (body `metadata` merged with header x-llmgw-metadata): key -> value(s)",
    )
    tags: list[str] | None = Field(default=None, description="Every listed tag is in metadata.tags")
    team: OneOrMany | None = Field(default=None, description="metadata.team (the key's team once keys exist)")
    key: OneOrMany | None = Field(default=None, description="metadata.key (the virtual key's name once keys exist)")
    user: OneOrMany | None = Field(default=None, description="The body's `user` field, else metadata.user")
    prompt_tokens_over: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Estimated prompt size (characters of message text / 4) above this"
    )
    prompt_tokens_at_most: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Estimated prompt size at most this"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> When:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a `when` needs at least one matcher (model, metadata, tags, team, key, user, prompt_*)")
        return self


MAX_PRICE_PER_1M = 1_000_000.0
"""The highest price a policy may set: USD 1 per token, over 1,000 times any model's. With token
counts bounded too (``providers/usage.py:MAX_TOKENS``) a priced request's cost is finite and
bounded (:data:`llmgw_kernel.decisions.cost.MAX_COST_USD`)."""

_PerMillion = Annotated[float, Field(ge=0, le=MAX_PRICE_PER_1M, allow_inf_nan=False)]


class Price(_Frozen):
    """USD per million tokens: finite, from 0 to 1,000,000 (USD 1 per token)."""

    input_per_1m: _PerMillion
    output_per_1m: _PerMillion
    cached_input_per_1m: _PerMillion | None = Field(
        default=None, description="Cached prompt tokens (absent: billed at input_per_1m)"
    )


def check_weights(weights: list[float | None]) -> None:
    """Either every target has a weight or none has, and not all weights are 0."""
    weighted = [w is not None for w in weights]
    if any(weighted) and not all(weighted):
        raise ValueError("either every target has a weight or none has")
    if all(weighted) and sum(w or 0 for w in weights) <= 0:
        raise ValueError("weights must not all be 0")
