"""The key a client presents: Authorization: Bearer (OpenAI SDKs) or x-api-key (Anthropic SDKs)."""

from __future__ import annotations

import pytest

from llmgw_kernel.proxy.credentials import presented_key


@pytest.mark.parametrize(("headers", "key"), [
    ([], None),
    ([(b"authorization", b"Bearer vk-1")], "vk-1"),
    ([(b"authorization", b"bearer  vk-1 ")], "vk-1"),
    ([(b"x-api-key", b"vk-2")], "vk-2"),
    ([(b"x-api-key", b"vk-2"), (b"authorization", b"Bearer vk-1")], "vk-1"),
    ([(b"authorization", b"Basic abc"), (b"x-api-key", b"vk-2")], "vk-2"),
    ([(b"authorization", b"Bearer "), (b"x-api-key", b" ")], None),
])  # fmt: skip
def test_presented_key(headers, key):
    assert presented_key(headers) == key
