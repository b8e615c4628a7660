"""A forecast's figures as a table a person reads: values, sample sizes, and the band of
observed values ``llmgw forecast check`` would accept after promotion.

The band is ``value + difference_interval(f, f)``: the interval ``forecast check`` computes
(docs/forecast.md) when the window observed after promotion is like the replayed one (same
size, teams and spread). It answers "how far may the live figures wander from this forecast
before the check says NO". Beside the live policy's forecast over the same window, the
``change`` column is the candidate's figure minus the live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..replay.forecast_intervals import difference_interval

if TYPE_CHECKING:
    import pandas as pd


def _unit(f: Mapping[str, Any]) -> tuple[str, float]:
    return ("%", 100.0) if f["kind"] == "share" else ("$ per 1k requests", 1.0)


def forecast_table(forecast: Mapping[str, Any] | None, live: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per figure: the candidate's value (and the live policy's, and the change), its
    sample size, teams, design effect, and the band ``forecast check`` would accept."""
    import pandas as pd

    rows = []
    live_figures = (live or {}).get("figures", {})
    for name, f in (forecast or {}).get("figures", {}).items():
        if f["value"] is None:
            continue
        unit, scale = _unit(f)
        lo, hi = difference_interval(f, f) if f["n"] > 1 else (float("nan"), float("nan"))
        row: dict[str, Any] = {"figure": name, "unit": unit}
        if live is not None:
            lf = live_figures.get(name)
            row["live"] = lf["value"] * scale if lf and lf["value"] is not None else float("nan")
        row["candidate"] = f["value"] * scale
        if live is not None:
            row["change"] = row["candidate"] - row["live"]
        row.update(
            check_low=(f["value"] + lo) * scale, check_high=(f["value"] + hi) * scale, n=f["n"],
            teams=f["clusters"], design_effect=f["design_effect"],
        )  # fmt: skip
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).set_index("figure")
    values = [c for c in ("live", "candidate", "change", "check_low", "check_high") if c in table]
    shares = table["unit"] == "%"
    table.loc[shares, values] = table.loc[shares, values].round(2)  # percent: to 0.01 point
    table.loc[~shares, values] = table.loc[~shares, values].round(6)  # USD per 1k requests: to a millionth
    return table.round({"design_effect": 2})
