"""Where the shared state lives: the policy's ``state: {redis: ...}`` section and the URL.

The URL (which may carry a password) is never in the policy: the policy names the
environment variable that holds it (``url_env``), and without a ``state`` section the
gateway reads ``LLMGW_REDIS_URL``. No URL at all: one process, state in memory, as before.

>>> RedisSettings(url_env="REDIS_URL").on_unavailable
'fail_closed'
>>> try:
...     RedisSettings.model_validate({"url": "redis://:pw@host"})
... except ValueError as exc:
...     print("never goes in the policy" in str(exc))
True
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_URL_ENV = "LLMGW_REDIS_URL"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class RedisSettings(BaseModel):
    """How to reach Redis and what to do when it cannot be reached (docs/deploy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    url_env: Annotated[str, Field(pattern=ENV_NAME)] = Field(
        default=DEFAULT_URL_ENV,
        description="Environment variable holding the URL (redis://[:password@]host:port/db, rediss:// for TLS)",
    )
    ca_file: str | None = Field(default=None, description="CA bundle verifying a rediss:// server (default: system)")
    connect_timeout_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(default=500, description="TCP + TLS connect")
    command_timeout_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(
        default=250, description="One command (an admission is one script call)"
    )
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=32, description="Connections per process (requests wait for a free one)"
    )
    on_unavailable: Literal["fail_closed", "fail_open"] = Field(
        default="fail_closed",
        description="Redis unreachable: fail_closed refuses requests a hard budget applies to (503); fail_open "
        "admits them against this process's own counters and flags the row",
    )
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_:{}.-]{1,64}$")] = Field(
        default="{llmgw}", description="Key prefix (a {hash tag}: every key in one Redis Cluster slot)"
    )
    reservation_lease_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=900, description="A reservation whose process died is released after this long"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literal_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise ValueError(
                "url: a Redis URL (and its password) never goes in the policy; put it in an environment "
                "variable and name it with url_env: NAME"
            )
        return data


class StateSettings(BaseModel):
    """The policy's ``state`` section: where state shared by several processes lives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redis: RedisSettings | None = Field(default=None, description="Absent: LLMGW_REDIS_URL if set, else memory")
    breakers: Literal["local", "shared"] = Field(
        default="local",
        description="local: each process keeps its own circuit breakers; shared: a circuit opened by one process "
        "is open in every process on the same Redis within a second, and one process at a time probes it",
    )


class StateConfigError(ValueError):
    """The policy names a URL variable that is not set, or asks for a shared mode without Redis."""


def redis_settings(state: StateSettings | None, environ: Any = os.environ) -> tuple[str, RedisSettings] | None:
    """(URL, settings) of the shared state, or None (one process, state in memory).

    >>> redis_settings(None, {}) is None
    True
    >>> redis_settings(None, {"LLMGW_REDIS_URL": "redis://h:6379"})[0]
    'redis://h:6379'
    >>> redis_settings(StateSettings(breakers="shared"), {})
    Traceback (most recent call last):
    ...
    llmgw_kernel.state.config.StateConfigError: state.breakers: shared needs Redis, and none is configured: ...
    """
    settings = state.redis if state is not None else None
    if settings is None:
        url = environ.get(DEFAULT_URL_ENV)
        if url:
            return url, RedisSettings()
        if state is not None and state.breakers == "shared":  # else silently per process: not what was asked
            raise StateConfigError(
                f"state.breakers: shared needs Redis, and none is configured: set {DEFAULT_URL_ENV}, or name the "
                "variable holding its URL with state.redis.url_env (or say state.breakers: local)"
            )
        return None
    url = environ.get(settings.url_env)
    if not url:
        raise StateConfigError(f"state.redis.url_env names {settings.url_env}, which is not set")
    return url, settings
