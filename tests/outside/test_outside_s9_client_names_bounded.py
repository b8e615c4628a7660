"""Outside-style: team and user names a client chooses, 20,000 characters long or with control characters.

By hand (open mode): `metadata.team` / `metadata.user` / the body's `user` (also the Anthropic
SDK's `metadata.user_id` and the `x-llmgw-metadata` header) were accepted at any length and with
ESC, NUL or CR LF in them. Each name is a budget and rate-limit subject kept in memory for its
windows (3,000 requests with distinct 8,000-character names: the proxy's RSS 141 -> 222 MB, kept
until the month ends — a user name is the client's even in enforced mode), a Prometheus label
(`llmgw_budget_*{who=...}` carried the raw ESC and NUL), a cache namespace, a filter option and a
dashboard row (a 20,000-character team pushed every table's figures off the screen).
Expected: a 400 in the API's format naming the parameter, logged as a client error; a name of
up to 256 ordinary characters (any script) still served and logged as given.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from conftest import wait_for_rows

MSG = [{"role": "user", "content": "hi"}]
LONG = "t" * 257


def _openai(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"metadata": {"team": LONG}}, "metadata.team"),
        ({"metadata": {"user": "u" * 20_000}}, "metadata.user"),
        ({"user": LONG}, "user"),
        ({"metadata": {"team": "ops\x1b[2J"}}, "metadata.team"),
        ({"user": "u1\r\nFAKE"}, "user"),
        ({"metadata": {"team": "a\x00b"}}, "metadata.team"),
        ({"extra_headers": {"x-llmgw-metadata": json.dumps({"team": "h" * 300})}}, "metadata.team"),
    ],
    ids=["team-long", "meta-user-huge", "user-long", "team-esc", "user-crlf", "team-nul", "header-team-long"],
)
def test_a_long_or_control_character_name_is_a_400_naming_it(gateway, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _openai(gateway).chat.completions.create(model="gpt-4o-mini", messages=MSG, **kwargs)
    body = err.value.body
    assert isinstance(body, dict) and body.get("param") == param and body.get("code") == "invalid_value", body
    rid = err.value.response.headers["x-request-id"]
    row = wait_for_rows(gateway, f"request_id = '{rid}'")[0]
    assert (row["status"], row["outcome"], row["team"], row["end_user"]) == (400, "client_error", None, None), row


def test_the_other_apis_refuse_it_too(gateway) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _openai(gateway).embeddings.create(model="text-embedding-3-small", input="hi", user=LONG)
    assert isinstance(err.value.body, dict) and err.value.body.get("param") == "user", err.value.body
    client = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as aerr:
        client.messages.create(model="gpt-4o-mini", max_tokens=16, messages=MSG, metadata={"user_id": LONG})
    assert aerr.value.body["type"] == "error" and "256" in aerr.value.body["error"]["message"], aerr.value.body


def test_a_name_of_256_characters_in_any_script_is_served_and_logged_as_given(gateway) -> None:
    team, user = "é" * 256, "người-dùng " * 23  # 253 characters
    resp = _openai(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, metadata={"team": team}, user=user
    )
    rid = resp.headers["x-request-id"]
    row = wait_for_rows(gateway, f"request_id = '{rid}'")[0]
    assert (row["status"], row["team"], row["end_user"]) == (200, team, user), row
