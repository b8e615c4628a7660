"""Live admission counts spend only where a budget reads it (docs/budgets.md, "What spend is
counted"), and a hot reload that adds a budget seeds its spend from the log exactly once.

Real `llmgw serve` processes in front of the fake upstream, the official openai SDK."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import openai
from conftest import policy_for, reload_policy, until, wait_for_rows

from llmgw_kernel import load_policy, replay
from llmgw_kernel.decisions.limits import window_bounds
from llmgw_kernel.replay.versions import served_policies

COST = 0.018  # the fake upstream's 11 + 7 tokens at $1,000 per 1M
T = TypeVar("T")
PRICED = {"pricing": {"gpt-4o-mini": {"input_per_1m": 1000.0, "output_per_1m": 1000.0}}}


def _policy(upstream, limits: list[dict] | None) -> dict:
    doc = policy_for(upstream.base_url, **PRICED)
    if limits is not None:
        doc["budgets"] = {"timezone": "UTC", "limits": limits}
    return doc


def _client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="sk-anything", max_retries=0, timeout=30)


def _ask(client: openai.OpenAI, team: str, user: str) -> int:
    try:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=10, user=user,
            metadata={"team": team},
        )  # fmt: skip
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


def traffic_around(gw, change: Callable[[], T], clients: int = 6) -> tuple[list[int], T]:
    """``change()`` (a reload) made while ``clients`` threads send requests without a pause: 30
    answered before it, 30 more after it; the status codes, and what ``change`` returned."""
    stop = threading.Event()
    codes: list[int] = []

    def load(i: int) -> None:
        client = _client(gw)
        while not stop.is_set():
            codes.append(_ask(client, "search", f"u{i}"))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        until("traffic before the change", lambda: len(codes) >= 30)
        made = change()
        after = len(codes)
        until("traffic after the change", lambda: len(codes) >= after + 30)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return codes, made


def _metric(gw, name: str, **labels: str) -> float | None:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in httpx.get(gw.url + "/metrics").text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_names_no_budget_reads_cost_no_admission_state(make_gateway, upstream):
    """Regression: spend was counted for every (scope, window) of every subject, budgets or not,
    so each distinct `user` / `metadata.team` a client sent stayed in memory (6 buckets each)
    for the rest of the month. Now only the buckets a budget reads: the named team's and global."""
    gw = make_gateway(_policy(upstream, [
        {"scope": "global", "usd": 1000, "window": "month"},
        {"scope": "team", "name": "search", "usd": 1000, "window": "month"},
    ]))  # fmt: skip
    client = _client(gw)
    codes = [_ask(client, "search" if i % 2 else f"team-{i:04d}", f"end-user-{i:04d}") for i in range(40)]
    assert codes == [200] * 40
    wait_for_rows(gw, "cost_usd > 0", 40)
    # was 189: 21 teams, 40 users, the key and global, 3 windows each
    assert _metric(gw, "llmgw_admission_state_entries", kind="spend_buckets") == 2
    spent = _metric(gw, "llmgw_budget_spent_usd", scope="team", who="search", window="month")
    assert spent is not None and abs(spent - 20 * COST) < 1e-9
    assert abs(_metric(gw, "llmgw_budget_spent_usd", scope="global", window="month") - 40 * COST) < 1e-9


def test_a_reload_adding_a_team_budget_counts_the_spend_made_before_it(make_gateway, upstream):
    """The new budget's (team, month) was not counted before the reload: the reload seeds it from
    the log, so the budget refuses where the month's spend says, not after a fresh start."""
    gw = make_gateway(_policy(upstream, None))
    client = _client(gw)
    assert [_ask(client, "search", "u") for _ in range(5)] == [200] * 5
    assert [_ask(client, "other", "u") for _ in range(3)] == [200] * 3
    wait_for_rows(gw, "cost_usd > 0", 8)
    assert _metric(gw, "llmgw_admission_state_entries", kind="spend_buckets") == 0
    # $0.090 spent; room for two more requests ($0.108 < 0.117), not a third ($0.126)
    reload_policy(gw, _policy(upstream, [{"scope": "team", "name": "search", "usd": 0.117, "window": "month"}]))
    assert abs(_metric(gw, "llmgw_budget_spent_usd", scope="team", who="search") - 5 * COST) < 1e-9
    assert [_ask(client, "search", "u") for _ in range(3)] == [200, 200, 429]
    assert _ask(client, "other", "u") == 200  # another team: no budget
    rows = wait_for_rows(gw, "admission = 'budget_exceeded'")
    assert "$0.13 spent" in rows[0]["admission_reason"], rows[0]["admission_reason"]

    # then a budget for each team: 'other' is seeded from the log, 'search' (counted since the
    # first reload) is not seeded a second time
    wait_for_rows(gw, "cost_usd > 0", 11)
    reload_policy(gw, _policy(upstream, [
        {"scope": "team", "name": "search", "usd": 0.117, "window": "month"},
        {"scope": "team", "usd": 1000, "window": "month"},
    ]))  # fmt: skip
    for team, n in (("search", 7), ("other", 4)):
        shown = _metric(gw, "llmgw_budget_spent_usd", scope="team", who=team, window="month", mode="hard")
        assert shown is not None and abs(shown - n * COST) < 1e-9, (team, shown)

    # and replay, each row under the version that served it, decides every admission as live did
    wait_for_rows(gw, "true", 12)
    result = replay(load_policy(gw.policy_path), gw.data_dir, versions=served_policies(gw.policy_path))
    assert result.summary["differs_from_log"]["limits"] == 0 and result.compare_to_log() == 0


def test_requests_settling_while_a_reload_seeds_are_counted_once(make_gateway, upstream):
    """The reload's cut-off: every settlement is either in the log's spend settled by the cut or
    counted live after it, never both, never neither — with requests settling all along."""
    gw = make_gateway(_policy(upstream, [{"scope": "global", "usd": 1e6, "window": "month"}]))
    codes, version = traffic_around(gw, lambda: reload_policy(gw, _policy(upstream, [
        {"scope": "global", "usd": 1e6, "window": "month"},
        {"scope": "team", "name": "search", "usd": 1e6, "window": "month"},
        {"scope": "user", "usd": 1e6, "window": "month"},
    ])))  # fmt: skip
    assert set(codes) == {200}
    rows = wait_for_rows(gw, "cost_usd > 0", len(codes))
    assert len(rows) == len(codes)
    seeded = until("the cut in the log", lambda: re.search(r"seeded from the log.* cut ([0-9.]+)", gw.server_log()))
    cut = float(seeded[1])
    # the race was there: requests the old policy admitted settled after the cut, before the swap
    late = [r for r in rows if r["policy_version"] != version and r["settled_ts"] > cut]
    assert late, "no request settled while the reload seeded"
    start = window_bounds(time.time(), "month", "UTC")[0].timestamp()
    for labels, who in (({"scope": "team", "who": "search"}, lambda r: True),
                        ({"scope": "user", "who": "u3"}, lambda r: r["end_user"] == "u3")):  # fmt: skip
        logged = sum(round(r["cost_usd"] * 1e9) for r in rows if who(r) and r["admitted_ts"] >= start)
        shown = _metric(gw, "llmgw_budget_spent_usd", window="month", **labels)
        assert shown is not None and round(shown * 1e9) == logged, (labels, shown, logged / 1e9, len(late))
