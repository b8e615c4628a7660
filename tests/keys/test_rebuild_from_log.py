"""The start-up rebuild of budgets and rate windows (proxy/runtime.py ``rebuild_limits``) sums
what the log says was spent; it never re-runs admission. A request refused live costs nothing
(it never ran), a row with a reservation but no settled cost adds nothing, and the rate
windows hold the last minute's admissions and settled tokens. Real Parquet log, real DuckDB."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmgw_kernel import open_log
from llmgw_kernel.decisions.limits import Subject, applicable_budgets, applicable_rates
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.policy.load import load_policy
from llmgw_kernel.proxy.runtime import rebuild_limits

POLICY = """
providers: {local: {kind: openai, base_url: "http://127.0.0.1:9", api_key_env: LOCAL_API_KEY}}
routes: {gpt-4o-mini: {targets: [{provider: local, model: gpt-4o-mini}]}}
pricing: {gpt-4o-mini: {input_per_1m: 1000.0, output_per_1m: 1000.0}}
budgets:
  timezone: UTC
  limits:
    - {scope: key, name: k1, usd: 0.05, window: month, mode: hard}
    - {scope: global, usd: 1000, window: month}
    - {scope: team, usd: 1000, window: day}
rate_limits:
  - {scope: key, name: k2, rpm: 2}
  - {scope: key, name: k3, tpm: 100}
"""


def _row(rid: str, at: float, key: str, *, admission: str | None = "ok", cost: float | None = None,
         reserved: float | None = None, tokens: int = 18, settled: bool = True) -> RequestRecord:  # fmt: skip
    """A chat completion row filled in as the pipeline fills it."""
    rec = RequestRecord(rid, at, "chat.completions")
    rec.route, rec.plan, rec.key_id, rec.team = "gpt-4o-mini", ("local/gpt-4o-mini",), key, "search"
    rec.admission = admission
    rec.ts_end = at + 0.2
    if admission is not None:
        rec.admitted_ts, rec.reserved_usd, rec.reserved_tokens = at + 0.001, reserved, 60
    if admission in (None, "ok") and settled:
        rec.status, rec.outcome, rec.target = 200, "ok", "local/gpt-4o-mini"
        rec.usage = {"prompt_tokens": tokens - 7, "completion_tokens": 7, "total_tokens": tokens}
        rec.cost_usd = cost
        if admission == "ok":
            rec.settled_ts = at + 0.2
    elif admission not in (None, "ok"):
        rec.status, rec.outcome = 429, "limited"
    return rec


def _write(data_dir: Path, rows: list[RequestRecord]) -> None:
    writer = LogWriter(data_dir, flush_ms=60_000)
    for rec in rows:
        writer.append(rec)
    writer.close()


#: the key store's ids: a virtual key's spend is counted in every window (it may get a budget);
#: any other key id (open mode) only where a budget reads it
VIRTUAL_KEYS = {"k1": None, "k2": None, "k3": None, "k9": None}


@pytest.fixture
def policy(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def _logged_cost(data_dir: Path, where: str = "true") -> float:
    con = open_log(data_dir)
    try:
        return con.execute(f"SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE {where}").fetchall()[0][0]
    finally:
        con.close()


def test_rebuilt_spend_is_the_sum_of_settled_costs(tmp_path, policy):
    now = time.time()
    # the rows fall in the day (week, month) of ``now`` even just after a UTC midnight: a row
    # 50 s before 00:00:15 is yesterday's, and the team's daily spend would miss it
    t0 = max(now - 50, now - now % 86400 + 1)
    data = tmp_path / "data"
    _write(data, [
        _row("r1", t0, "k1", cost=0.018, reserved=0.10),
        # refused live: the in-flight reservation of a request the crash lost from the log held
        # the budget; re-running admission would let it in and charge its $0.10 reservation
        _row("r2", t0 + 10, "k1", admission="budget_exceeded", reserved=0.10),
        # admitted, but no settled cost (never answered, or an unpriced target): nothing
        _row("r3", t0 + 20, "k1", reserved=0.10, settled=False),
        _row("r4", t0 + 30, "k1", admission=None, cost=0.002),  # no limit applied live
        _row("r5", t0 + 40, "other", cost=0.007, reserved=0.05),
    ])  # fmt: skip
    limits = rebuild_limits(policy, data, SimpleNamespace(history=None, keys=VIRTUAL_KEYS))

    spent, held = limits.spend("key", "k1", "month", now)
    assert spent == pytest.approx(_logged_cost(data, "key_id = 'k1'")) == pytest.approx(0.020)
    assert held == 0  # nothing is in flight after a restart
    assert limits.spend("global", None, "month", now)[0] == pytest.approx(_logged_cost(data))
    assert limits.spend("team", "search", "day", now)[0] == pytest.approx(_logged_cost(data))
    assert limits.spend("team", "search", "month", now)[0] == 0  # no budget reads it: not counted
    # so the key keeps the room the log says it has
    subject = Subject("k1", "search", None, "gpt-4o-mini")
    budgets = applicable_budgets(policy, None, subject)
    assert limits.admit("next", now, subject, budgets, [], 0.02, 0).allowed


def test_rate_windows_hold_the_last_minutes_admissions_and_tokens(tmp_path, policy):
    now = time.time()
    data = tmp_path / "data"
    _write(data, [
        _row("old", now - 200, "k2", cost=0.018),  # left the window long ago
        _row("a", now - 30, "k2", cost=0.018),
        _row("b", now - 20, "k2", reserved=0.0, settled=False),  # admitted: counts as a request
        _row("c", now - 10, "k2", admission="rate_limited"),  # refused: does not count
        _row("t1", now - 25, "k3", cost=0.05, tokens=60),
        _row("t2", now - 15, "k3", cost=0.05, tokens=45),
    ])  # fmt: skip
    limits = rebuild_limits(policy, data, SimpleNamespace(history=None, keys=VIRTUAL_KEYS))

    k2 = Subject("k2", "search", None, "gpt-4o-mini")
    rates = applicable_rates(policy, None, k2)
    v = limits.admit("next", now, k2, [], rates, 0.0, 10)
    assert not v.allowed and v.kind == "rate_limited"
    assert 25 <= v.retry_after_s <= 31  # when "a" leaves the window

    k3 = Subject("k3", "search", None, "gpt-4o-mini")
    v = limits.admit("next3", now, k3, [], applicable_rates(policy, None, k3), 0.0, 10)
    assert not v.allowed and "100 tokens per minute" in v.reason  # 105 settled tokens
    assert limits.admit("later3", now + 61, k3, [], applicable_rates(policy, None, k3), 0.0, 10).allowed


def test_a_restart_counts_the_spend_to_the_last_nano_dollar_as_the_live_proxy_did(tmp_path, policy):
    """Regression: spend was a float sum, and a restart summed the log in SQL in another order
    than the live proxy had (800 x $0.018: 14.399999999999906 rebuilt vs 14.400000000000178
    added one by one), so a $14.40 budget admitted after a restart what replay refused.
    Spend is now counted in whole nano-dollars: the same whatever the order."""
    from llmgw_kernel.decisions.limits import Budget, Limits, window_bounds

    now = time.time()
    start = max(now - 900, window_bounds(now, "month", "UTC")[0].timestamp() + 1)  # all in this month
    rows = [_row(f"r{i:04d}", start + i, "k9", admission=None, cost=0.018) for i in range(800)]
    _write(tmp_path, rows)
    rebuilt = rebuild_limits(policy, tmp_path, SimpleNamespace(history=None, keys=VIRTUAL_KEYS))
    live = Limits(timezone="UTC")
    for rec in rows:
        live.commit(Subject("k9", "search", None, "gpt-4o-mini"), rec.ts, rec.cost_usd)
    assert rebuilt.spend("key", "k9", "month", time.time()) == live.spend("key", "k9", "month", time.time())
    [limit] = load_policy(
        {**_doc(), "budgets": {"limits": [{"scope": "key", "name": "k9", "usd": 14.4}]}}
    ).budgets.limits
    subject = Subject("k9", "search", None, "gpt-4o-mini")
    verdicts = [
        s.admit("next", time.time(), subject, [Budget(limit, "k9")], [], 0.0, 0).allowed for s in (rebuilt, live)
    ]
    assert verdicts == [False, False]  # $14.40 spent of $14.40: exhausted, on both sides


def _doc() -> dict:
    import yaml

    return yaml.safe_load(POLICY)
