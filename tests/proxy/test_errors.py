"""Every error a client can meet: OpenAI's error body, the right status, logged, server alive."""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import UPSTREAM_KEY, wait_for_rows

CHAT = "/chat/completions"
MSG = [{"role": "user", "content": "x"}]


def post(gw, json=None, content=None, headers=None, timeout=10.0) -> httpx.Response:
    return httpx.post(f"{gw.base_url}{CHAT}", json=json, content=content, headers=headers, timeout=timeout)


def assert_error(r: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    assert UPSTREAM_KEY not in r.text
    return err


CASES = [
    # (id, request kwargs, status, code, param)
    ("malformed-json", {"content": b'{"model": "gpt-4o-mini", "messages": ['}, 400, "invalid_json", None),
    ("not-an-object", {"json": [1, 2]}, 400, None, None),
    ("missing-model", {"json": {"messages": MSG}}, 400, "missing_required_parameter", "model"),
    ("missing-messages", {"json": {"model": "gpt-4o-mini"}}, 400, "missing_required_parameter", "messages"),
    (
        "bad-message",
        {"json": {"model": "gpt-4o-mini", "messages": [{"content": "no role"}]}},
        400,
        None,
        "messages[0].role",
    ),
    (
        "bad-temperature",
        {"json": {"model": "gpt-4o-mini", "messages": MSG, "temperature": 7}},
        400,
        "invalid_value",
        "temperature",
    ),
    (
        "bad-stream-type",
        {"json": {"model": "gpt-4o-mini", "messages": MSG, "stream": "yes"}},
        400,
        "invalid_type",
        "stream",
    ),
    ("unknown-model", {"json": {"model": "gpt-9", "messages": MSG}}, 404, "model_not_found", "model"),
    (
        "too-large",
        {"json": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 70000}]}},
        413,
        "request_too_large",
        None,
    ),
    ("upstream-500", {"json": {"model": "broken-500", "messages": MSG}}, 500, "upstream_500", None),
    ("upstream-400", {"json": {"model": "broken-400", "messages": MSG}}, 400, "upstream_400", None),
    ("upstream-401", {"json": {"model": "broken-401", "messages": MSG}}, 502, "upstream_auth_error", None),
    ("upstream-timeout", {"json": {"model": "hang", "messages": MSG}}, 504, "upstream_timeout", None),
    ("upstream-reset", {"json": {"model": "reset", "messages": MSG}}, 502, "upstream_unreachable", None),
    ("no-target", {"json": {"model": "no-key", "messages": MSG}}, 503, "no_target_available", None),
]


@pytest.mark.parametrize(("case", "kwargs", "status", "code", "param"), CASES, ids=[c[0] for c in CASES])
def test_error_cases(gateway, case, kwargs, status, code, param):
    r = post(gateway, headers={"x-request-id": f"err-{case}"}, **kwargs)
    err = assert_error(r, status, code, param)
    row = wait_for_rows(gateway, f"client_request_id = 'err-{case}'")[0]
    assert row["status"] == status and row["outcome"] != "ok"
    assert row["error_message"] == err["message"]
    assert httpx.get(gateway.url + "/health").status_code == 200  # still serving


def test_upstream_message_is_kept(gateway):
    err = assert_error(post(gateway, json={"model": "broken-500", "messages": MSG}), 500)
    assert "fake upstream failure 500" in err["message"]


def test_no_target_names_the_missing_variable(gateway):
    r = post(gateway, json={"model": "no-key", "messages": MSG})
    err = assert_error(r, 503)
    assert "LLMGW_TEST_UNSET_KEY" in err["message"]
    assert r.headers["x-should-retry"] == "false"  # the official SDKs then do not retry it


def test_sdk_does_not_retry_a_route_without_targets(gateway, upstream):
    c = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=2)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.with_raw_response.create(
            model="no-key", messages=MSG, extra_headers={"x-request-id": "no-retry"}
        )
    # every attempt the SDK made ended before it raised: once a later request's row is in the log,
    # theirs are too (rows are flushed in the order requests end), so the count is final
    later = post(gateway, json={"model": "no-key", "messages": MSG}, headers={"x-request-id": "no-retry-after"})
    assert later.status_code == 503
    wait_for_rows(gateway, "client_request_id = 'no-retry-after'")
    assert len(wait_for_rows(gateway, "client_request_id = 'no-retry'", n=0)) == 1


def test_sdk_raises_typed_errors(gateway):
    c = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        c.chat.completions.create(model="gpt-9", messages=MSG)
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="gpt-4o-mini", messages=[])


def test_streamed_request_errors_before_first_byte_are_json(gateway):
    r = post(gateway, json={"model": "broken-500", "messages": MSG, "stream": True})
    assert_error(r, 500)
    assert r.headers["content-type"] == "application/json"


def test_unknown_path_and_method(gateway):
    assert_error(httpx.get(gateway.url + "/v1/nope"), 404, "not_found")
    assert_error(httpx.get(gateway.url + "/v1/chat/completions"), 405, "method_not_allowed")


def test_wrong_upstream_key_never_leaks(make_gateway, upstream):
    from conftest import policy_for

    gw = make_gateway(policy_for(upstream.base_url), env={"LOCAL_API_KEY": "sk-wrong-key-abcdef123456"})
    r = post(gw, json={"model": "gpt-4o-mini", "messages": MSG})
    assert_error(r, 502, "upstream_auth_error")
    assert "sk-wrong-key" not in r.text
    rows = wait_for_rows(gw, "status = 502")
    assert "sk-wrong-key" not in str(rows)
    assert "sk-wrong-key" not in gw.server_log()
