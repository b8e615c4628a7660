"""The key a client presents, whichever API it speaks.

OpenAI SDKs send ``Authorization: Bearer <key>``; Anthropic SDKs send ``x-api-key: <key>``.
The virtual-key check reads both through :func:`presented_key`, so one check serves every
inbound API. Neither header is ever forwarded: adapters build their upstream headers from
the provider's own key and never copy inbound headers.

>>> presented_key([(b"x-api-key", b"vk-123")])
'vk-123'
>>> presented_key([(b"authorization", b"Bearer vk-456"), (b"x-api-key", b"vk-123")])
'vk-456'
"""

from __future__ import annotations

from collections.abc import Iterable


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """``Authorization: Bearer`` if sent (it wins), else ``x-api-key``, else None."""
    api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip().decode("latin-1")
        elif name == b"x-api-key" and value.strip():
            api_key = value.strip().decode("latin-1")
    return api_key
