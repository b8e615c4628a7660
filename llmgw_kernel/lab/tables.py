"""Small tables a person reads instead of an object's repr: what synthetic traffic served, and a
replay's routing per target.

A dataclass or a summary dict printed as the last line of a cell shows as a wall of nested
Python (``TrafficReport(sent=400, ..., by_team=Counter({...}))``); these are the same numbers
as a table with a one-line caption.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def served(report: Any) -> pd.DataFrame:
    """Requests per team of a :class:`~llmgw_kernel.traffic.TrafficReport` (``sent``, ``ok``,
    ``errors``, ``by_team``), its totals in the caption line printed above it."""
    import pandas as pd

    print(f"{report.ok} of {report.sent} requests served ({report.errors} failed) through a real llmgw serve; "
          f"the log is in {report.data_dir}")  # fmt: skip
    teams = pd.Series(dict(report.by_team), name="requests", dtype="int64").rename_axis("team").sort_index()
    return teams.to_frame().assign(share=lambda t: (t["requests"] / max(1, int(t["requests"].sum()))).round(3))


def routing_by_target(summary: Mapping[str, Any]) -> pd.DataFrame:
    """A replay's routing per target (``summary["routing"]``): first-target share as logged and
    as replayed, the logged attempts, failure rate and latency, and the prices used; the totals
    in the caption line printed above it."""
    import pandas as pd

    r = summary["routing"]
    est = r["estimates"]
    print(f"{r['routed']} requests replayed, {r['first_target_changed']} sent first to another target than "
          f"live; estimated cost {est['cost_usd']:.6f} USD, fallback rate {_pct(est['fallback_rate'])}, "
          f"client-visible error rate {_pct(est['error_rate'])}")  # fmt: skip
    targets = est.get("targets", {})
    names = sorted(set(targets) | set(r["first_target_share"]) | set(r["logged_first_target_share"]))
    rows = {
        name: {
            "logged_share": r["logged_first_target_share"].get(name, 0.0),
            "replayed_share": r["first_target_share"].get(name, 0.0),
            "attempts": targets.get(name, {}).get("attempts"),
            "failure_rate": targets.get(name, {}).get("failure_rate"),
            "latency_ms_p50": targets.get(name, {}).get("latency_ms_p50"),
            "input_per_1m_usd": targets.get(name, {}).get("input_per_1m"),
            "output_per_1m_usd": targets.get(name, {}).get("output_per_1m"),
        }
        for name in names
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("target")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"
