"""A log an older llmgw wrote may hold a cost no request can have (an import before costs were
bounded: ``cost_usd = 1e10``, ``1.7e308``). The gateway must still start on it and replay must
still read it: a logged cost that is no request's (not finite, negative, or above
``decisions/cost.py:MAX_COST_USD``) is left out of spend with a logged warning — not a DuckDB
"out of range for INT64" at the budget rebuild, not an OverflowError in replay.

``replay/limits_stage.py:limits_at`` leaves such a row out of spend; the replay window reads its
cost as unknown (``replay/window.py``), so neither fold sums it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml
from conftest import Gateway

from llmgw_kernel import load_policy, replay
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"chat": {"targets": [{"provider": "demo", "model": "demo-a"}]}},
    "budgets": {"limits": [{"scope": "team", "usd": 5, "window": "day"}]},
    "log": {"flush_ms": 100},
}


def _old_log(data_dir: Path, costs: list[float]) -> None:
    """Rows as an older import wrote them: answered chat completions of team `search`, a minute ago."""
    writer = LogWriter(data_dir, flush_ms=60_000, journal=False)
    for i, cost in enumerate(costs):
        rec = RequestRecord(f"old{i}", time.time() - 60, "chat.completions")
        rec.route, rec.target, rec.provider, rec.upstream_model = "chat", "demo/demo-a", "demo", "demo-a"
        rec.status, rec.outcome, rec.team, rec.cost_usd = 200, "ok", "search", cost
        rec.usage = {"prompt_tokens": 10, "completion_tokens": 5}
        rec.origin, rec.plan, rec.route_reason, rec.body_mode = "import:table", ("demo/demo-a",), "imported", "none"
        writer.append(rec)
    writer.close()


def test_serve_starts_on_an_old_log_with_a_cost_beyond_the_bound(tmp_path: Path) -> None:
    _old_log(tmp_path / "data", [1e10, 0.001])
    gw = Gateway(tmp_path, POLICY)  # raises when `llmgw serve` exits instead of getting ready
    try:
        r = httpx.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}], "metadata": {"team": "search"}},
        )
        assert r.status_code == 200, r.text  # the team spent 0.001 of its 5 USD: the bogus row is no spend
    finally:
        gw.terminate()


def test_replay_reads_an_old_log_whose_summed_cost_overflows(tmp_path: Path) -> None:
    _old_log(tmp_path / "data", [1e300, 1.7e308, 1.7e308, 0.001])
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(POLICY))
    result = replay(load_policy(tmp_path / "live.yaml"), tmp_path / "data")
    assert result.summary["requests"] == 4
