"""What the notebooks' forecast tables show in JupyterLab (found by HLAB, an analyst's outside test).

``lab.forecast_table`` is the table the notebooks end with. JupyterLab typesets the text between
two dollar signs of an HTML output as LaTeX: policy_lab's cost band ``-$0.004025 .. $0.017221``
showed as an italic formula (screenshot at 1400 px). And the band of a figure that cannot leave
0..100% (a share) or go below 0 (a cost) read ``72.63% .. 111.87%`` and ``-$0.004025 ..``:
values no observation can take. Here over a real served log and a candidate whose tiny team
budget refuses most requests (policy_lab's default did: 92%).
"""

from __future__ import annotations

import re

import pytest
import yaml

from llmgw_kernel import lab, load_policy, open_log, replay
from llmgw_kernel.replay.forecast import forecast_of
from llmgw_kernel.traffic import serve_synthetic_traffic

LIVE = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"assistant": {"targets": [
        {"provider": "demo", "model": "demo-large", "weight": 70},
        {"provider": "demo", "model": "demo-small", "weight": 30},
    ]}},
    "pricing": {"demo-large": {"input_per_1m": 2.5, "output_per_1m": 10.0},
                "demo-small": {"input_per_1m": 0.15, "output_per_1m": 0.6}},
    "log": {"flush_ms": 100},
}  # fmt: skip
TINY_BUDGET = {"timezone": "UTC", "limits": [{"scope": "team", "usd": 0.00001, "window": "day", "mode": "hard"}]}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("hlab-tables")
    (tmp / "live.yaml").write_text(yaml.safe_dump(LIVE, sort_keys=False))
    report = serve_synthetic_traffic(tmp / "live.yaml", tmp / "data", n=60, routes=["assistant"])
    assert report.errors == 0, report.failure_lines()
    con = open_log(tmp / "data")
    teams = con.sql("SELECT request_id, team FROM requests").df().set_index("request_id")["team"]
    first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    window = {"since": str(first), "until": str(last)}
    live = forecast_of(replay(load_policy(LIVE), con), window, teams)
    cand = forecast_of(replay(load_policy({**LIVE, "budgets": TINY_BUDGET}), con), window, teams)
    assert (
        cand["figures"]["refused[budget_exceeded]"]["value"] >= 0.9
    )  # each team: its first request only (54-56 of 60)
    return lab.forecast_table(cand, live).to_dict("index")


def test_no_cell_of_the_forecast_table_has_a_dollar_sign_jupyterlab_would_typeset_as_math(table):
    for figure, row in table.items():
        assert not any("$" in str(v) for v in row.values()), (figure, row)
    assert re.fullmatch(r"\d+\.\d{6} USD", table["cost_per_1k_usd"]["candidate"])


def test_the_accepted_band_stays_within_the_values_a_figure_can_take(table):
    for figure, row in table.items():
        low, high = (float(x) for x in re.findall(r"-?\d+\.\d+", row["forecast check accepts"]))
        assert 0.0 <= low <= high, (figure, row)
        if figure != "cost_per_1k_usd":
            assert high <= 100.0, (figure, row)
    assert table["refused[budget_exceeded]"]["forecast check accepts"].endswith(".. 100.00%")
