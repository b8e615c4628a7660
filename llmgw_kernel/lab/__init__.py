"""Helpers the notebooks share: pictures, controls that re-render in place, forecast tables,
and writing a candidate policy for ``llmgw policy promote``.

Notebooks stay thin: a notebook states its question and its numbers; how a figure becomes a
picture, how a control updates its outputs, and where a candidate goes are decided here once.
Needs the ``notebooks`` extra (matplotlib, ipywidgets, IPython).
"""

from __future__ import annotations

from .candidate import CANDIDATES_ENV, Candidate, candidates_dir, forecast_window, write_candidate
from .data import Stop, holds_log, scratch_dir, spend_history
from .figures import figure, picture
from .forecast_view import forecast_table
from .live import LiveView, live
from .tables import routing_by_target, served

__all__ = [
    "CANDIDATES_ENV",
    "Candidate",
    "LiveView",
    "Stop",
    "candidates_dir",
    "figure",
    "forecast_table",
    "forecast_window",
    "holds_log",
    "live",
    "picture",
    "routing_by_target",
    "scratch_dir",
    "served",
    "spend_history",
    "write_candidate",
]
