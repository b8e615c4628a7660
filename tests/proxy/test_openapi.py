"""``GET /openapi.json``: generated from the app's route table, a valid OpenAPI 3.1 document,
and every route it lists is really served by a running `llmgw serve` (none answers 404/405)."""

from __future__ import annotations

import httpx
from openapi_spec_validator import OpenAPIV31SpecValidator

from llmgw_kernel.proxy import app, openapi


def table() -> dict[str, set[str]]:
    out = {path: set(methods) for path, methods in app.ROUTES.items()}
    out.update({path: set(methods) for path, methods in app.TEMPLATES.items()})
    return out


def test_document_is_valid_openapi_31_and_matches_the_route_table(gateway):
    r = httpx.get(f"{gateway.url}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(doc).validate()  # raises on an invalid document
    documented = {path: {m.upper() for m in ops} for path, ops in doc["paths"].items()}
    assert documented == table()  # every route in the table is documented, and nothing else
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_every_documented_route_is_served(gateway):
    doc = httpx.get(f"{gateway.url}/openapi.json").json()
    for path, ops in doc["paths"].items():
        url = gateway.url + path.replace("{model}", "gpt-4o-mini")
        for method in ops:
            r = httpx.request(method.upper(), url, content=b"{}", timeout=10)
            assert r.status_code not in (405,), (method, path, r.text)
            if r.status_code == 404:  # only "no such object" 404s, never "no such path"
                assert r.json()["error"]["code"] != "not_found", (method, path, r.text)


def test_every_route_has_a_description_and_no_description_is_stale():
    assert set(table()) == set(openapi.DESCRIPTIONS)
