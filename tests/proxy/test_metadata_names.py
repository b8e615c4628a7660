"""``metadata.team`` / ``metadata.user`` must be strings (docs/api.md, "Metadata").

They name who a request counts for: team and user budgets, rate limits, the cache's
``[key, team]`` namespace, and the log's ``team`` / ``end_user`` columns. An object used to be
logged as its Python repr (``team = "{'a': 1}"``) and budgeted under that text; now it is a 400
naming the field, logged as a client error, and a string team is still logged as it is.
"""

from __future__ import annotations

import json

import openai
import pytest
from conftest import wait_for_rows

MSG = [{"role": "user", "content": "hi"}]


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


@pytest.mark.parametrize("value", [{"a": 1}, ["search"], 7, True], ids=["object", "array", "number", "bool"])
@pytest.mark.parametrize("name", ["team", "user"])
def test_a_non_string_team_or_user_in_the_body_is_a_400(gateway, name: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).chat.completions.create(model="gpt-4o-mini", messages=MSG, metadata={name: value})
    body = err.value.body
    assert isinstance(body, dict) and body.get("param") == f"metadata.{name}", body
    rid = err.value.response.headers["x-request-id"]
    row = wait_for_rows(gateway, f"request_id = '{rid}'")[0]
    assert (row["status"], row["outcome"], row["team"], row["end_user"]) == (400, "client_error", None, None), row


def test_a_non_string_team_in_the_metadata_header_is_a_400(gateway) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, extra_headers={"x-llmgw-metadata": json.dumps({"team": {"a": 1}})}
        )
    assert isinstance(err.value.body, dict) and err.value.body.get("param") == "metadata.team", err.value.body


def test_a_string_team_and_user_are_logged_as_given(gateway) -> None:
    resp = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, metadata={"team": "search", "user": "u-1"}
    )
    rid = resp.headers["x-request-id"]
    row = wait_for_rows(gateway, f"request_id = '{rid}'")[0]
    assert (row["status"], row["team"], row["end_user"]) == (200, "search", "u-1"), row
