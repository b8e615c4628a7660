"""Outside-style: `/v1/embeddings` with an `input` array holding something OpenAI does not take.

OpenAI's `input` is a string, an array of strings, an array of token ids (integers) or an array of
such arrays; anything else (`[{"a": 1}]`, `[["a"]]`, `[1.5]`, `[null]`, `["a", 1]`) is a 400
invalid_request_error. By hand the gateway passed `[{"a": 1}]` to the upstream (here answered 200:
an embedding of an object's repr, cached and billed). Like a chat message's content
(test_outside_s7_chat_content_type.py): the gateway's own 400 naming `input`, in OpenAI's format,
the upstream never asked, the request logged once.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import UPSTREAM_KEY, wait_for_rows

MODEL = "text-embedding-3-small"
BAD = [[{"a": 1}], [["a"]], [1.5], [None], ["a", 1], [[1, "a"]], [True], {"a": 1}]


@pytest.mark.parametrize("value", BAD, ids=lambda v: repr(v))
def test_embeddings_input_of_a_wrong_shape_is_openai_400(gateway, upstream, value) -> None:
    before = upstream.counts[MODEL]
    client = openai.OpenAI(base_url=gateway.base_url, api_key=UPSTREAM_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input=value, encoding_format="float")  # type: ignore[arg-type]
    body = caught.value.body if isinstance(caught.value.body, dict) else {}
    assert body.get("type") == "invalid_request_error", caught.value.body
    assert (body.get("param") or "").startswith("input"), caught.value.body
    assert upstream.counts[MODEL] == before, "the upstream was asked"
    rid = caught.value.response.headers["x-request-id"]
    assert len(wait_for_rows(gateway, f"request_id = '{rid}'")) == 1


@pytest.mark.parametrize("value", ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]], ids=lambda v: repr(v))
def test_embeddings_inputs_openai_takes_still_pass(gateway, value) -> None:
    r = httpx.post(f"{gateway.base_url}/embeddings", json={"model": MODEL, "input": value}, timeout=30)
    assert r.status_code == 200, r.text
