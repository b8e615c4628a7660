"""The provider seam: one small protocol every adapter implements.

An adapter turns an OpenAI-format request into a call to its provider and gives back
OpenAI-format bytes: a whole body, or a stream of SSE ``data:`` payloads. Adapters never
raise anything but :class:`UpstreamError` for upstream trouble, and never put a secret in
an error message (``scrub``).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp

    from ..policy.model import Provider, Target

#: statuses worth trying the next target for, besides every 5xx (a server or gateway failure:
#: 501 from one provider may be a feature another has; 520/529 are CDN / overload codes)
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class UpstreamError(Exception):
    """An attempt that failed. ``kind``: http | timeout | connection | protocol | unsupported.

    ``unsupported``: this target cannot serve the request as sent (a parameter its provider
    lacks); the next target may, so it is retryable, and if none can the client gets a 400
    naming ``param``.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None = None,
        body: bytes | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.body = body
        self.param = param
        self.code = code  # a provider error code worth passing to the client (e.g. content_filter)
        self.retry_after = retry_after  # the upstream's Retry-After header, verbatim

    @property
    def retryable(self) -> bool:
        """Worth trying the next target: timeouts, connection errors, unsupported, 429 and 5xx."""
        status = self.status or 0
        return self.kind != "http" or status in RETRYABLE_STATUSES or 500 <= status <= 599


def unsupported(param: str, message: str) -> UpstreamError:
    return UpstreamError("unsupported", message, 400, param=param)


@dataclass(slots=True)
class Reply:
    """A whole (non-streamed) upstream answer in OpenAI format."""

    body: bytes
    usage: dict[str, Any] | None = None


@dataclass(slots=True)
class StreamReply:
    """A started stream: ``events`` yields SSE data payloads (without ``data: ``)."""

    events: AsyncIterator[bytes]
    usage: dict[str, Any] | None = None  # set by the adapter once the stream reports it
    extra: dict[str, Any] = field(default_factory=dict)


class Adapter(Protocol):
    """What the proxy needs from a provider."""

    name: str
    provider: Provider

    def unavailable_reason(self) -> str | None:
        """Why this provider cannot be used now (e.g. its key variable is unset), or None."""

    async def chat(self, body: dict[str, Any], target: Target) -> Reply: ...

    async def chat_stream(self, body: dict[str, Any], target: Target, include_usage: bool) -> StreamReply:
        """Start a stream. Returns once the upstream accepted it (before the first event)."""

    async def embeddings(self, body: dict[str, Any], target: Target) -> Reply: ...


@dataclass(slots=True)
class AdapterContext:
    """What adapters share: the one upstream connection pool, and the stored credentials
    (name -> decrypted key, None when not stored) that providers may reference."""

    session: aiohttp.ClientSession
    credential: Callable[[str], str | None] = field(default=lambda name: None)


def encode_embedding(values: list[float], encoding_format: str) -> list[float] | str:
    """An embedding as OpenAI returns it: the floats, or (``base64``) their little-endian float32
    bytes in base64 — the openai SDK asks for base64 by default and decodes it."""
    if encoding_format == "float":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text
