"""What routing may look at for one request, built the same way live and in replay.

>>> ctx = route_context("req_1", "assistant",
...     {"messages": [{"role": "user", "content": "x" * 40}], "user": "ann"}, {"tier": "gold"})
>>> ctx.user, ctx.prompt_tokens, ctx.metadata["tier"], ctx.prompt_source
('ann', 10, 'gold', 'estimate')

The prompt size is an *estimate*: characters of message text / 4, rounded up (the same
function live and in replay, so conditions on it replay exactly when bodies are logged).
When the log holds no bodies (``log.bodies: hashed | none``), replay passes the logged
``prompt_tokens`` (the provider's count) instead, and ``prompt_source`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RouteContext:
    """The request as routing sees it. ``metadata`` holds team/key/tags/anything the client sent."""

    request_id: str
    route: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None
    prompt_tokens: int = 0
    prompt_source: str = "estimate"  # estimate | logged_prompt_tokens | unknown
    targets: tuple[str, ...] = ()  # the route's declared target ids (filled in for rule functions)

    @property
    def team(self) -> str | None:
        """``metadata.team`` (reserved for the virtual key's team once keys exist)."""
        v = self.metadata.get("team")
        return None if v is None else str(v)

    @property
    def key(self) -> str | None:
        """``metadata.key`` (reserved for the virtual key's name once keys exist)."""
        v = self.metadata.get("key")
        return None if v is None else str(v)

    @property
    def tags(self) -> list[str]:
        tags = self.metadata.get("tags")
        if isinstance(tags, str):
            return [tags]
        return [str(t) for t in tags] if isinstance(tags, list) else []


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """What a rule function may return: target ids to try, in order, and why."""

    targets: list[str]
    reason: str = ""


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_chars(p.get("text")) if isinstance(p, dict) else _text_chars(p) for p in content)
    return 0


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """ceil(characters / 4) over message text, a top-level ``system`` and embeddings ``input``."""
    chars = _text_chars(body.get("system")) + _text_chars(body.get("input"))
    for msg in body.get("messages") or ():
        if isinstance(msg, dict):
            chars += _text_chars(msg.get("content"))
    return -(-chars // 4)


def route_context(
    request_id: str,
    route: str,
    body: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    prompt_tokens: int | None = None,
) -> RouteContext:
    """Build the context from a request body and its merged metadata (pure).

    ``body`` None (not logged): the prompt size is ``prompt_tokens`` if given (replay passes
    the logged count), else unknown (0).
    """
    meta = dict(metadata) if isinstance(metadata, Mapping) else {}
    user = body.get("user") if body else None
    if not isinstance(user, str) or not user:
        user = meta.get("user")
        user = str(user) if user is not None else None
    if body is not None:
        return RouteContext(request_id, route, meta, user, estimate_prompt_tokens(body))
    if prompt_tokens is not None:
        return RouteContext(request_id, route, meta, user, int(prompt_tokens), "logged_prompt_tokens")
    return RouteContext(request_id, route, meta, user, 0, "unknown")
