"""kill -9 with a hard key budget: after the restart the key's spend is what the log says was
spent (the sum of its rows' cost_usd) — not a re-run of admission, which would let a request
refused live in and charge its reservation, because the request whose reservation refused it
was in flight at the crash and never logged. Real `llmgw serve`, real kill -9."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest
from conftest import wait_for_rows
from keyed_gateway import ACTUAL_USD, ADMIN_TOKEN, PRICE, KeyedGateway, chat, metered_policy

from llmgw_kernel.decisions.limits import prompt_upper_bound

MESSAGES = [{"role": "user", "content": "hello"}]
MAX_TOKENS = 5


def _spend(gw: KeyedGateway, key: str) -> dict:
    r = gw.key_info(key)
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["spend"] if s["scope"] == "key")


def _logged_cost(gw: KeyedGateway, key_id: str) -> float:
    return sum(r["cost_usd"] or 0.0 for r in wait_for_rows(gw, f"key_id = '{key_id}'", 0))


def test_spend_after_kill_9_is_the_logged_cost(upstream, tmp_path):
    policy = metered_policy(upstream.base_url)
    policy["pricing"]["hang"] = PRICE
    # answers after 30 s: in flight when the server is killed
    policy["routes"]["held"] = {"targets": [{"provider": "other", "model": "hang", "timeout_ms": 60_000}]}
    policy["budgets"] = {"timezone": "UTC", "default_max_tokens": 50, "limits": []}
    reservation = (prompt_upper_bound({"messages": MESSAGES}) + MAX_TOKENS) * PRICE["output_per_1m"] / 1e6
    # room for two answered requests plus part of one reservation
    budget = round(2 * ACTUAL_USD + reservation / 2, 6)
    env = {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    gw = KeyedGateway(tmp_path, policy, env)
    try:
        key, record = gw.create_key(name="crash", budget_usd=budget, budget_window="day")
        for _ in range(2):
            chat(gw.client(key), max_tokens=MAX_TOKENS)

        def held() -> None:
            body = {"model": "held", "messages": MESSAGES, "max_tokens": MAX_TOKENS}
            with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
                httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=60,
                           headers={"Authorization": f"Bearer {key}"})  # fmt: skip

        thread = threading.Thread(target=held, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while _spend(gw, key)["in_flight_usd"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _spend(gw, key)["in_flight_usd"] == pytest.approx(reservation)
        refused = httpx.post(
            f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES,
            "max_tokens": MAX_TOKENS}, headers={"Authorization": f"Bearer {key}"}, timeout=10,
        )  # fmt: skip
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
        assert wait_for_rows(gw, f"key_id = '{record['id']}' AND admission = 'budget_exceeded'", 1)
        assert wait_for_rows(gw, f"key_id = '{record['id']}'", 3)

        gw.proc.kill()  # kill -9 with the held request in flight
        gw.proc.wait(10)
        gw._log.close()
        gw = KeyedGateway(tmp_path, None, env)

        logged = _logged_cost(gw, record["id"])
        assert logged == pytest.approx(2 * ACTUAL_USD)
        after = _spend(gw, key)
        assert after["spent_usd"] == pytest.approx(logged) and after["in_flight_usd"] == 0
        # the key keeps the room the log says it has
        assert chat(gw.client(key), max_tokens=MAX_TOKENS)[1].usage.total_tokens == 18
    finally:
        gw.terminate()
