"""A forecast's figures as a table a person reads: values, sample sizes, and the band of
observed values ``llmgw forecast check`` would accept after promotion.

The band is ``value + difference_interval(f, f)``: the interval ``forecast check`` computes
(docs/forecast.md) when the window observed after promotion is like the replayed one (same
size, teams and spread). It answers "how far may the live figures wander from this forecast
before the check says NO". Beside the live policy's forecast over the same window, ``change``
is the candidate's figure minus the live one. Shares read in percent (changes in points), cost
per 1k requests in USD; the numbers themselves are in the forecast dicts.

No cell carries a ``$``: JupyterLab typesets the text between two dollar signs of an HTML output
as LaTeX, so ``-$0.004 .. $0.017`` showed as an italic formula. A band is cut to the values a
figure can take (a share within 0-100%, a cost not below 0): an observation outside it is
impossible, so the cut band accepts exactly what the interval accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..replay.forecast_intervals import difference_interval

if TYPE_CHECKING:
    import pandas as pd


def _fmt(f: Mapping[str, Any], value: float | None, change: bool = False) -> str:
    """A share as ``12.34%`` (a change as ``+1.23pt``), a cost per 1k as ``0.004133 USD``."""
    if value is None or value != value:
        return "-"
    sign = "+" if change else ""
    if f["kind"] == "share":
        return f"{100 * value:{sign}.2f}{'pt' if change else '%'}"
    return f"{f.get('scale', 1) * value:{sign}.6f} USD"


def _band(f: Mapping[str, Any], value: float) -> str:
    """The observed values ``forecast check`` accepts, cut to the values the figure can take."""
    if f["n"] <= 1:
        return "-"
    lo, hi = difference_interval(f, f)
    scale = 1 if f["kind"] == "share" else f.get("scale", 1)
    low, high = max(0.0, value + lo / scale), value + hi / scale
    if f["kind"] == "share":
        high = min(1.0, high)
    return f"{_fmt(f, low)} .. {_fmt(f, high)}"


def forecast_table(forecast: Mapping[str, Any] | None, live: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per figure: the candidate's value (and the live policy's, and the change), the
    band ``forecast check`` would accept, the sample size, teams and design effect."""
    import pandas as pd

    rows = []
    live_figures = (live or {}).get("figures", {})
    for name, f in (forecast or {}).get("figures", {}).items():
        if f["value"] is None:
            continue
        value = f["value"] if f["kind"] == "share" else f["mean"]
        row: dict[str, Any] = {"figure": name}
        if live is not None:
            lf = live_figures.get(name) or {}
            was = lf.get("value") if f["kind"] == "share" else lf.get("mean")
            row["live"] = _fmt(f, was)
        row["candidate"] = _fmt(f, value)
        if live is not None:
            row["change"] = _fmt(f, value - was if was is not None else None, change=True)
        row["forecast check accepts"] = _band(f, value)
        row.update(n=f["n"], teams=f["clusters"], design_effect=round(f["design_effect"], 2))
        rows.append(row)
    return pd.DataFrame(rows).set_index("figure") if rows else pd.DataFrame()
