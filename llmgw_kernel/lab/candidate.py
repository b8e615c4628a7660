"""A candidate policy written where ``llmgw policy promote`` takes it, with the forecast it rests on.

Every notebook ends here: :func:`write_candidate` writes ``policies/candidates/<name>.yaml``
(relative to the directory the notebook runs in; ``$LLMGW_CANDIDATES_DIR`` overrides it, which
the test suite uses to keep candidates out of the repository), validates it exactly as
promotion will (as the live file it replaces, with this installation's extras), replays it over
the window promotion will replay, and returns the exact command to promote it.

The window: ``llmgw policy promote --forecast-window W`` replays the last ``W`` ending at the
moment it runs. :func:`forecast_window` picks the smallest whole number of hours (or days)
that covers every logged request, plus one unit of slack, so the command still covers the same
rows when it is run a little later and the recorded forecast is the one shown here.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..log.reader import open_log
from ..policy.load import PolicySource, load_policy
from ..policy.versions import read_file_version, validate_as_live
from ..timeparse import duration

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..policy.model import Policy

CANDIDATES_ENV = "LLMGW_CANDIDATES_DIR"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def candidates_dir() -> Path:
    """``$LLMGW_CANDIDATES_DIR``, else ``policies/candidates`` under the working directory."""
    return Path(os.environ.get(CANDIDATES_ENV) or Path("policies") / "candidates")


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def forecast_window(con: duckdb.DuckDBPyConnection, now: datetime) -> str | None:
    """The ``--forecast-window`` that covers every logged request back from ``now`` (one unit of
    slack); None for an empty log."""
    first = con.execute("SELECT min(ts) FROM requests").fetchone()
    if first is None or first[0] is None:
        return None
    hours = math.ceil(max(0.0, (now - _aware(first[0])).total_seconds()) / 3600) + 1
    return f"{hours}h" if hours <= 48 else f"{math.ceil(hours / 24) + 1}d"


@dataclass(frozen=True)
class Candidate:
    """A written candidate: where it is, what it is, and the forecast its promotion records."""

    path: Path
    policy: Policy
    live: Path
    data_dir: Path
    window: str | None
    forecast: dict[str, Any] | None
    since: datetime
    until: datetime

    @property
    def command(self) -> str:
        """The exact ``llmgw policy promote`` command for this candidate."""
        args = [
            "llmgw",
            "policy",
            "promote",
            str(self.path),
            "--policy",
            str(self.live),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.window:
            args += ["--forecast-window", self.window]
        return shlex.join(args)

    def live_forecast(self) -> dict[str, Any] | None:
        """The live policy's forecast over the same window: what the candidate is compared with."""
        from ..replay.forecast import forecast_for

        con = open_log(self.data_dir)
        try:
            return forecast_for(load_policy(self.live), con, self.since, self.until)
        finally:
            con.close()

    def compare(self) -> pd.DataFrame:
        """The candidate's forecast figures beside the live policy's (:func:`.forecast_table`)."""
        from .forecast_view import forecast_table

        return forecast_table(self.forecast, self.live_forecast() or {})

    def _repr_markdown_(self) -> str:
        basis = (self.forecast or {}).get("basis", {})
        based = (
            f"{basis.get('requests')} requests from {basis.get('since')} to {basis.get('until')}, "
            f"cost from `{basis.get('cost_source')}`, {basis.get('unpriced_requests')} unpriced"
            if self.forecast
            else "no request in the window: promotion records no forecast"
        )
        return (
            f"**Candidate** `{self.path}` (version `{self.policy.version}`)\n\n"
            f"Promote it with (from `{Path.cwd()}`, where the notebook runs):\n\n```\n{self.command}\n```\n\n"
            f"**Forecast** it is based on (recorded by the promotion, checked by `llmgw forecast check`): {based}."
        )


def write_candidate(
    policy: PolicySource, name: str, *, live: str | os.PathLike[str], data_dir: str | os.PathLike[str],
    now: datetime | None = None,
) -> Candidate:  # fmt: skip
    """Write ``policy`` to ``<candidates_dir()>/<name>.yaml``, validate it as promotion will (as
    ``live``'s replacement), and forecast it over the window promotion will replay."""
    from ..replay.forecast import forecast_for

    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r}: a candidate name is letters, digits, '.', '_' and '-'")
    pol = load_policy(policy)
    path = candidates_dir() / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(pol.model_dump(mode="json", exclude_unset=True), sort_keys=False))
    written = validate_as_live(read_file_version(path), Path(live))
    if written.version != pol.version:
        raise RuntimeError(f"{path} reads back as version {written.version}, not {pol.version}")
    now = now or datetime.now(UTC)
    con = open_log(data_dir)
    try:
        window = forecast_window(con, now)
        since = now - duration(window) if window else now
        forecast = forecast_for(written, con, since, now) if window else None
    finally:
        con.close()
    return Candidate(path, written, Path(live).resolve(), Path(data_dir).resolve(), window, forecast, since, now)
