"""The fuzz suite (issue 10, "keep it so"): property-based requests to every client route of a
real `llmgw serve`, in front of a fake upstream of each provider kind (tests/fuzzgen.py, the
generator ``benchmarks/fuzz.py`` runs for longer).

For every request: no 5xx made by the gateway itself (an upstream's own 5xx passed through is
fine: its log row says ``upstream_error``), and a log row for every request the pipeline
answered, found by the ``x-request-id`` the client received. At the end: ``/health`` is 200
and a plain request is still answered and logged. Seeded and bounded (``derandomize``, a fixed
number of examples per route family): about half a minute here, well under two in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Gateway, wait_for_rows
from fuzzgen import PIPELINE_PATHS, UPSTREAM_KEY, FuzzRequest, gateway_fault, policy, requests, start_fakes
from hypothesis import HealthCheck, given, settings

from llmgw_kernel import open_log

EXAMPLES = 300  # per route family


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fakes = start_fakes()
    gateway = Gateway(tmp_path_factory.mktemp("fuzz"), policy({k: f.base_url for k, f in fakes.items()}),
                      env={"FUZZ_UPSTREAM_KEY": UPSTREAM_KEY})  # fmt: skip
    yield gateway
    gateway.terminate()
    for fake in fakes.values():
        fake.stop()


def row_of(gw: Gateway, request_id: str, timeout: float = 60) -> dict[str, Any] | None:
    rows = wait_for_rows(gw, f"request_id = '{request_id}' OR client_request_id = '{request_id}'", timeout=timeout)
    return rows[0] if rows else None


def logged_ids(gw: Gateway) -> set[str]:
    con = open_log(gw.data_dir)
    try:
        pairs = con.sql("SELECT request_id, client_request_id FROM requests").fetchall()
    finally:
        con.close()
    return {i for pair in pairs for i in pair if i}


FAMILIES = {
    "chat": ("/v1/chat/completions", "/chat/completions"),
    "embeddings": ("/v1/embeddings", "/embeddings"),
    "messages-and-models": ("/v1/messages", "/v1/models", "/v1/models/x", "/models/x"),
    "responses-completions-count-tokens": ("/v1/responses", "/v1/completions", "/v1/messages/count_tokens"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_no_input_gets_a_5xx_from_the_gateway_and_every_request_is_logged(gw: Gateway, family: str) -> None:
    paths = FAMILIES[family]
    answered: list[tuple[str, FuzzRequest]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(req=requests(paths))
    def one(req: FuzzRequest) -> None:  # fmt: skip
        with httpx.Client(base_url=gw.url, timeout=60) as client:
            r = client.request(req.method, req.path, content=req.body, headers=req.headers)
        rid = r.headers.get("x-request-id")
        pipeline = req.method == "POST" and req.path in PIPELINE_PATHS
        if pipeline:
            assert rid, f"the pipeline answered without x-request-id: {r.status_code}\n{req.describe()}"
            answered.append((rid, req))
        row = row_of(gw, rid) if pipeline and r.status_code >= 500 else None
        fault = gateway_fault(r.status_code, r.content, row)
        assert fault is None, f"{fault}\n{req.describe()}"

    one()
    assert httpx.get(f"{gw.url}/health", timeout=10).status_code == 200
    if answered:
        wait_for_rows(gw, f"request_id = '{answered[-1][0]}' OR client_request_id = '{answered[-1][0]}'")
    ids = logged_ids(gw)
    missing = [req.describe(200) for rid, req in answered if rid not in ids]
    assert not missing, f"{len(missing)} of {len(answered)} requests not logged, e.g.\n" + "\n".join(missing[:5])
    r = httpx.post(f"{gw.base_url}/chat/completions", timeout=30,
                   json={"model": "chat-openai", "messages": [{"role": "user", "content": "still there?"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert row_of(gw, r.headers["x-request-id"]) is not None
