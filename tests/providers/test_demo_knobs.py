"""The demo provider's model-name knobs: slow-<N>ms and flaky-<P>pct (deterministic)."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmgw_kernel.policy.model import Provider, Target
from llmgw_kernel.providers.base import UpstreamError
from llmgw_kernel.providers.demo import DemoAdapter


def _body(i: int) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": f"hello {i}"}], "user": f"u{i}"}


def _adapter() -> DemoAdapter:
    return DemoAdapter("demo", Provider(kind="demo"), None)  # type: ignore[arg-type]


def test_slow_waits_the_named_milliseconds():
    t = time.perf_counter()
    asyncio.run(_adapter().chat(_body(1), Target(provider="demo", model="demo-slow-60ms")))
    assert time.perf_counter() - t >= 0.06


def test_flaky_fails_the_named_share_deterministically():
    target = Target(provider="demo", model="demo-flaky-20pct")

    def outcome(i: int) -> bool:
        try:
            asyncio.run(_adapter().chat(_body(i), target))
        except UpstreamError as err:
            assert err.status == 503 and "flaky-20pct" in err.message
            return False
        return True

    first = [outcome(i) for i in range(300)]
    assert 0.12 < first.count(False) / 300 < 0.28
    assert first == [outcome(i) for i in range(300)]  # same request, same fate


@pytest.mark.parametrize("model", ["demo-echo", "demo-large"])
def test_plain_demo_models_never_fail(model):
    for i in range(50):
        asyncio.run(_adapter().chat(_body(i), Target(provider="demo", model=model)))
