"""The sampled check of a semantic hit (proxy/cache_verify.py) reads the upstream's usage as the
pipeline does (``providers/usage.checked_usage``): a count that is not a whole number from 0 is
unknown, so the check is still logged (``usage`` NULL, no cost) and counted, never charged. Before,
the check read ``reply.usage`` as it came: a negative count gave a negative cost, the cost counter
raised in the background task and the check's row was lost. Through a real `llmgw serve` with
virtual keys, the official openai SDK and the fake upstream, which answers the check with
negative usage."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from conftest import UPSTREAM_KEY, wait_for_rows, wait_model_ready
from fake_openai import FakeOpenAI
from test_bound_check_cost import ADMIN_TOKEN, TEAM, KeyedGateway, ask, checked_policy, learned_then_hit, metric
from test_cache_bound_live import PROBE

NEGATIVE = {"prompt_tokens": -50, "completion_tokens": 7, "total_tokens": -43}


class NegativeUsageUpstream(FakeOpenAI):
    """The fake upstream; while :attr:`negative` is set, every whole chat answer reports ``NEGATIVE``."""

    name = "negative-usage"

    def __init__(self) -> None:
        super().__init__(api_key=UPSTREAM_KEY)
        self.negative = False

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if not self.negative:
            return await super().chat(request)
        body = await self._record(request)
        message = {"role": "assistant", "content": "Hello from the fake upstream: " + PROBE}
        return web.json_response(
            {"id": "chatcmpl-neg", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
             "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": NEGATIVE}
        )  # fmt: skip


@pytest.fixture(scope="module")
def neg():
    fake = NegativeUsageUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def kgw(neg, tmp_path_factory):
    gw = KeyedGateway(
        tmp_path_factory.mktemp("check-usage"), checked_policy(neg.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    wait_model_ready(gw)
    yield gw
    gw.terminate()


def test_a_check_answered_with_invalid_usage_is_a_row_without_cost(kgw, neg):
    key, _ = kgw.create_key(name="negative", team=TEAM)
    client = kgw.client(key)
    ns = learned_then_hit(kgw, client, "checked")
    neg.negative = True  # the check's upstream call now reports a negative prompt count
    try:
        h = ask(client, PROBE, ns)
        assert h["x-llmgw-cache"] == "semantic-hit"
        row = wait_for_rows(kgw, f"request_id = '{h['x-llmgw-request-id']}.check'")[0]
    finally:
        neg.negative = False
    assert row["endpoint"] == "cache.check" and row["outcome"] == "ok", row
    assert row["usage_source"] == "none" and row["prompt_tokens"] is None, row  # unknown, as the pipeline logs them
    assert not row["cost_usd"]
    assert metric(kgw, "llmgw_cache_checks_total", route="checked", outcome="ok") == 1
    assert metric(kgw, "llmgw_cache_check_cost_usd_total", route="checked") == 0
