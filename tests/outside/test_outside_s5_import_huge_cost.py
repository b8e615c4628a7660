"""Outside-style: an imported row with an absurd `cost_usd` must not stop the gateway or replay.

docs/import.md: "A malformed record ... is reported with its place ... and skipped; the rest are imported",
and counts beyond 2³¹ − 1 are "reported and skipped the same way" — but `cost_usd` has no bound: a CSV row
with `cost_usd = 1e10` (a unit slip) or `1e300` is imported as is. Then:

- `llmgw serve` with a budget in the policy on that directory exits 3 at start-up: rebuilding budget spend
  from the log casts `round(cost_usd * 1e9)` to BIGINT (`replay/limits_stage.py: limits_at`) and DuckDB
  refuses 1e19 ("out of range for the destination type INT64");
- `replay()` of that policy raises `OverflowError: cannot convert float infinity to integer` once the
  window's summed cost overflows (two rows of 1e300 / 1.7e308).

Expected (either is fine): the import reports and skips such a record, or the server and replay read it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from conftest import Gateway

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"chat": {"targets": [{"provider": "demo", "model": "demo-a"}]}},
    "budgets": {"limits": [{"scope": "team", "usd": 5, "window": "day"}]},
    "log": {"flush_ms": 100},
}


def _import(data_dir: Path, costs: list[str], tmp: Path) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    lines = ["id,ts,route,target,provider,model,status,prompt_tokens,completion_tokens,cost_usd,team"]
    lines += [f"r{i},{now},chat,demo/demo-a,demo,demo-a,200,10,5,{cost},search" for i, cost in enumerate(costs)]
    (tmp / "spend.csv").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "import", "table", str(tmp / "spend.csv"), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_serve_starts_on_a_log_with_a_huge_imported_cost(tmp_path: Path) -> None:
    _import(tmp_path / "data", ["10000000000", "0.001"], tmp_path)
    gw = Gateway(tmp_path, POLICY)  # raises when `llmgw serve` exits instead of getting ready
    try:
        r = httpx.post(
            f"{gw.base_url}/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "x"}]}
        )
        assert r.status_code in (200, 429), r.text
    finally:
        gw.terminate()


def test_replay_of_a_budget_policy_over_huge_imported_costs(tmp_path: Path) -> None:
    from llmgw_kernel import load_policy, replay

    report = _import(tmp_path / "data", ["1e300", "1.7e308", "1.7e308", "0.001"], tmp_path)
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(POLICY))
    result = replay(load_policy(tmp_path / "live.yaml"), tmp_path / "data")
    assert result.summary["requests"] == 4 - report.count("skipped spend.csv")
