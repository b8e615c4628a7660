"""Unknown paths and methods: 404 / 405 in OpenAI's error format, naming the supported routes
(the same list /openapi.json documents); 405 carries ``Allow``."""

from __future__ import annotations

import httpx
import openai
import pytest

from llmgw_kernel.proxy import app


def supported() -> list[str]:
    table = {**app.ROUTES, **app.TEMPLATES}
    return [f"{m} {p}" for p, methods in table.items() for m in methods]


def test_unknown_path_lists_the_supported_routes(gateway):
    r = httpx.post(f"{gateway.url}/v1/nope", json={})
    assert r.status_code == 404 and r.headers["x-request-id"].startswith("req_")
    err = r.json()["error"]
    assert err["code"] == "not_found" and err["type"] == "invalid_request_error"
    assert err["message"].startswith("Unknown path: /v1/nope. Supported routes: ")
    for line in supported():
        assert line in err["message"]
    assert "GET /openapi.json" in err["message"]


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/chat/completions", "POST"),
    ("DELETE", "/v1/messages", "POST"),
    ("POST", "/v1/models", "GET"),
    ("PUT", "/openapi.json", "GET"),
    ("POST", "/v1/models/demo", "GET"),
    ("DELETE", "/models/demo", "GET"),
])  # fmt: skip
def test_wrong_method_is_405_with_allow(gateway, method, path, allow):
    r = httpx.request(method, gateway.url + path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    err = r.json()["error"]
    assert err["code"] == "method_not_allowed" and f"Method {method} is not allowed on {path}" in err["message"]
    assert "Supported routes: POST /v1/chat/completions" in err["message"]


def test_openai_sdk_sees_a_not_found_error(gateway):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="vk-any", max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.get("/nope", cast_to=object)
    assert "Supported routes" in exc.value.message
