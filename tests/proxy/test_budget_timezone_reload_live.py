"""A hot reload that changes only `budgets.timezone` keeps every budget's spend (docs/budgets.md,
"Hot reload"): the new zone's windows start at other instants, and each budget sees at once the
spend the log holds for its window in the new zone — counted once with requests settling all
through the reload. Before, the new zone's buckets started empty: a team over its daily budget
was admitted again until the window ended.

Real `llmgw serve` processes in front of the fake upstream, the official openai SDK."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from conftest import policy_for, reload_policy, until, wait_for_rows
from test_budget_counting_live import COST, PRICED, _ask, _client, _metric, traffic_around

from llmgw_kernel import load_policy, open_log, replay
from llmgw_kernel.decisions.limits import window_bounds
from llmgw_kernel.replay.versions import served_policies

ZONES = ("UTC", "Asia/Ho_Chi_Minh", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "Europe/Berlin",
         "America/Los_Angeles", "Asia/Tokyo")  # fmt: skip
MARGIN_S = 900  # no window of either zone starts or ends within this of now (the test's traffic)


def two_zones() -> tuple[str, str]:
    """(old, new): two zones whose current day, week and month each started at other instants,
    none starting or ending within MARGIN_S of now, so every request of the test is in the
    current windows of both."""
    now = time.time()

    def clear(tz: str) -> bool:
        return all(
            b[0].timestamp() < now - MARGIN_S and b[1].timestamp() > now + MARGIN_S
            for b in (window_bounds(now, w, tz) for w in ("day", "week", "month"))
        )  # fmt: skip

    def starts(tz: str) -> list[float]:
        return [window_bounds(now, w, tz)[0].timestamp() for w in ("day", "week", "month")]

    usable = [tz for tz in ZONES if clear(tz)]
    old = usable[0]
    new = next(tz for tz in usable if all(a != b for a, b in zip(starts(tz), starts(old), strict=True)))
    return old, new


def zone_policy(upstream, zone: str, limits: list[dict], **extra) -> dict:
    doc = policy_for(upstream.base_url, **PRICED)
    doc["budgets"] = {"timezone": zone, "limits": limits}
    doc.update(extra)
    return doc


def logged_nano(data_dir: Path, zone: str, window: str, where: str = "true") -> int:
    """The log's spend admitted in the current ``window`` of ``zone`` (rows ``where`` selects), in nano-dollars."""
    start = window_bounds(time.time(), window, zone)[0].timestamp()
    con = open_log(data_dir)
    try:
        (total,) = con.execute(
            f"SELECT coalesce(sum(CAST(round(cost_usd * 1e9) AS BIGINT)), 0) FROM requests"
            f" WHERE cost_usd > 0 AND admitted_ts >= ? AND ({where})", [start],
        ).fetchone()  # fmt: skip
    finally:
        con.close()
    return int(total)


def test_a_team_over_its_daily_budget_stays_refused_after_the_time_zone_changes(make_gateway, upstream):
    old, new = two_zones()
    limits = [
        {"scope": "team", "usd": 0.1, "window": "day"},  # each team: 6 requests ($0.108) exhaust it
        {"scope": "team", "name": "search", "usd": 1000, "window": "week"},
        {"scope": "global", "usd": 1000, "window": "month"},
    ]
    gw = make_gateway(zone_policy(upstream, old, limits))
    client = _client(gw)
    assert [_ask(client, "search", "u") for _ in range(7)] == [200] * 6 + [429]
    assert [_ask(client, "other", "u") for _ in range(2)] == [200] * 2
    wait_for_rows(gw, "cost_usd > 0", 8)

    version = reload_policy(gw, zone_policy(upstream, new, limits))
    # was 200: the new zone's day bucket started empty
    assert _ask(client, "search", "u") == 429
    rows = wait_for_rows(gw, f"admission = 'budget_exceeded' AND policy_version = '{version}'")
    assert "team 'search' daily budget of $0.10 is exhausted ($0.11 spent" in rows[0]["admission_reason"], rows
    _, end = window_bounds(time.time(), "day", new)
    assert f"resets {end.isoformat()}" in rows[0]["admission_reason"], rows[0]["admission_reason"]
    assert _ask(client, "other", "u") == 200

    wait_for_rows(gw, "cost_usd > 0", 9)
    for labels, window, where in (
        ({"scope": "team", "who": "search", "window": "day"}, "day", "team = 'search'"),
        ({"scope": "team", "who": "other", "window": "day"}, "day", "team = 'other'"),
        ({"scope": "team", "who": "search", "window": "week"}, "week", "team = 'search'"),
        ({"scope": "global", "window": "month"}, "month", "true"),
    ):
        shown = _metric(gw, "llmgw_budget_spent_usd", **labels)
        logged = logged_nano(gw.data_dir, new, window, where)
        assert shown is not None and round(shown * 1e9) == logged > 0, (labels, shown, logged)
    # the new zone's 4 buckets only: the old zone's were dropped
    assert _metric(gw, "llmgw_admission_state_entries", kind="spend_buckets") == 4

    # replay, each row under the version that served it, decides every admission as live did
    wait_for_rows(gw, "true", 11)
    result = replay(load_policy(gw.policy_path), gw.data_dir, versions=served_policies(gw.policy_path))
    assert result.summary["differs_from_log"]["limits"] == 0 and result.compare_to_log() == 0


def test_requests_settling_across_a_time_zone_change_are_counted_once(make_gateway, upstream):
    """Each settlement in the new zone's buckets once: settled by the reload's cut (the log's
    sum) or after it (counted live), with requests admitted under the old zone settling after it."""
    old, new = two_zones()
    limits = [{"scope": "team", "name": "search", "usd": 1e6, "window": "day"},
              {"scope": "user", "usd": 1e6, "window": "month"}]  # fmt: skip
    gw = make_gateway(zone_policy(upstream, old, limits))
    codes, version = traffic_around(gw, lambda: reload_policy(gw, zone_policy(upstream, new, limits)))
    assert set(codes) == {200}
    rows = wait_for_rows(gw, "cost_usd > 0", len(codes))
    for labels, window, where in (({"scope": "team", "who": "search", "window": "day"}, "day", "true"),
                                  ({"scope": "user", "who": "u3", "window": "month"}, "month", "end_user = 'u3'")):  # fmt: skip
        shown = _metric(gw, "llmgw_budget_spent_usd", **labels)
        logged = logged_nano(gw.data_dir, new, window, where)
        assert shown is not None and round(shown * 1e9) == logged > 0, (labels, shown, logged)
    # the race was there: requests the old policy admitted settled after the cut, before the switch
    seeded = until("the cut in the log", lambda: re.search(r"seeded from the log.* cut ([0-9.]+)", gw.server_log()))
    late = [r for r in rows if r["policy_version"] != version and r["settled_ts"] > float(seeded[1])]
    assert late, "no request settled while the reload seeded"


def test_a_virtual_keys_own_budget_keeps_its_spend_across_a_time_zone_change(upstream, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "keys"))
    from keyed_gateway import ADMIN_TOKEN, KeyedGateway, metered_policy

    old, new = two_zones()
    doc = metered_policy(upstream.base_url)
    doc["budgets"] = {"timezone": old, "limits": []}
    gw = KeyedGateway(tmp_path, doc, {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        key, record = gw.create_key(name="capped", budget_usd=0.1, budget_window="day")
        client = gw.client(key)
        assert [_ask(client, "t", "u") for _ in range(7)] == [200] * 6 + [429]
        wait_for_rows(gw, "cost_usd > 0", 6)
        doc["budgets"]["timezone"] = new
        reload_policy(gw, doc)
        assert _ask(client, "t", "u") == 429  # was 200: the key's new-zone bucket started empty
        [spend] = [s for s in gw.key_info(key).json()["spend"] if s["scope"] == "key"]
        start = window_bounds(time.time(), "day", new)[0]
        assert spend["window_start"] == start.isoformat(), spend
        logged = logged_nano(gw.data_dir, new, "day", f"key_id = '{record['id']}'")
        assert round(spend["spent_usd"] * 1e9) == logged == round(6 * COST * 1e9), spend
    finally:
        gw.terminate()


def slow_stream_policy(upstream, zone: str, limits: list[dict], **extra) -> dict:
    """zone_policy, with the fake's `slow-stream` (a chunk every 100 ms for 10 s) priced."""
    doc = zone_policy(upstream, zone, limits, **extra)
    doc["pricing"] = {**doc["pricing"], "slow-stream": doc["pricing"]["gpt-4o-mini"]}
    return doc


def open_slow_stream(client, team: str):
    """A streamed request on `slow-stream`, admitted (its first chunk read) and still in flight."""
    stream = client.chat.completions.create(
        model="slow-stream", messages=[{"role": "user", "content": "x"}], max_tokens=10, stream=True,
        metadata={"team": team},
    )  # fmt: skip
    chunks = iter(stream)
    next(chunks)
    return chunks


def test_a_reservation_in_flight_across_a_time_zone_change_is_held_in_the_new_window(make_gateway, upstream):
    """A request admitted before the change holds its reservation in the new zone's window of its
    admission (where it settles): admission after the switch counts it. Before, it stayed in the
    old zone's bucket and the new one read nothing in flight."""
    old, new = two_zones()
    limits = [{"scope": "team", "usd": 1000, "window": "day"}]
    gw = make_gateway(slow_stream_policy(upstream, old, limits))
    client = _client(gw)
    assert _ask(client, "search", "u") == 200
    day = {"scope": "team", "who": "search", "window": "day"}
    chunks = open_slow_stream(client, "search")
    held = _metric(gw, "llmgw_budget_in_flight_usd", **day)
    assert held is not None and held > 0
    reload_policy(gw, slow_stream_policy(upstream, new, limits))
    assert _metric(gw, "llmgw_budget_in_flight_usd", **day) == held  # was 0.0
    for _ in chunks:
        pass
    wait_for_rows(gw, "cost_usd > 0", 2)
    until("the stream settled", lambda: _metric(gw, "llmgw_budget_in_flight_usd", **day) == 0)
    shown = _metric(gw, "llmgw_budget_spent_usd", **day)
    assert shown is not None and round(shown * 1e9) == logged_nano(gw.data_dir, new, "day") > round(COST * 1e9)
