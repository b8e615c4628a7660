"""The policy page's data: the live policy's version history with the diff of each version
against the one before, when each version was archived and first / last served (the log's
``policy_version``: a hot reload shows as the first row a new version served), and the
forecast recorded at the last promotion beside what the log shows since
(:func:`llmgw_kernel.replay.forecast.forecast_report`, as ``llmgw forecast check`` prints it).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sql import CLIENT_SQL

if TYPE_CHECKING:
    import pandas as pd

    from .context import Context
    from .filters import Filters

_ENTRY = re.compile(r"^(?P<stamp>\d{8}T\d{6}\d*Z)-(?P<version>.+?)(?:\.yaml)?$")
FORECAST_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: str
    text: str
    archived_at: datetime | None  # when it was replaced (None: live)
    rolled_back: bool = False


@dataclass(frozen=True, slots=True)
class PolicyData:
    live_file: str | None
    live_version: str | None
    reload_error: str | None
    versions: tuple[PolicyVersion, ...]  # oldest first, the live one last
    served: pd.DataFrame  # policy_version, requests, first_served, last_served
    diffs: dict[str, str]  # version -> unified diff against the version before it
    forecast: dict[str, Any] | None  # forecast_report(...), None when none was recorded
    forecast_note: str


def history(live: Path) -> tuple[PolicyVersion, ...]:
    """Archived versions (rolled-back ones included) oldest first, then the live file."""
    from ..policy.versions import ROLLED_BACK, entries, history_dir, read_entry, version_or_none

    found = []
    rolled = history_dir(live) / ROLLED_BACK
    paths = [(p, False) for p in entries(live)]
    if rolled.is_dir():
        paths += [(p, True) for p in sorted(rolled.iterdir())]
    for path, was_rolled_back in paths:
        m = _ENTRY.match(path.name)
        if m is None:
            continue
        stamp = datetime.strptime(m["stamp"][:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        text = read_entry(path).text.decode("utf-8", "replace")
        found.append(PolicyVersion(m["version"], text, stamp, was_rolled_back))
    found.sort(key=lambda v: v.archived_at or datetime.max.replace(tzinfo=UTC))
    if live.is_file():
        found.append(PolicyVersion(version_or_none(live) or "(invalid)", live.read_text("utf-8", "replace"), None))
    return tuple(found)


def diffs(versions: tuple[PolicyVersion, ...]) -> dict[str, str]:
    out = {}
    for before, after in zip(versions, versions[1:], strict=False):
        lines = difflib.unified_diff(
            before.text.splitlines(), after.text.splitlines(), f"{before.version}", f"{after.version}", lineterm=""
        )
        out[after.version] = "\n".join(lines) or "(no change in the YAML)"
    if versions:
        out.setdefault(versions[0].version, "(the oldest version kept)")
    return out


_SERVED_SQL = f"""
SELECT coalesce(policy_version, '(none)') AS policy_version, count(*) AS requests,
       min(ts) AS first_served, max(ts) AS last_served
FROM requests WHERE {{where}} AND {CLIENT_SQL} GROUP BY 1 ORDER BY first_served
"""


def policy(ctx: Context, filters: Filters) -> PolicyData:
    snap = ctx.live.snapshot()
    live_file = (snap.policy_file if snap is not None else None) or (str(ctx.policy_path) if ctx.policy_path else None)
    versions = history(Path(live_file)) if live_file else ()

    def served(con: Any, now: float) -> pd.DataFrame:
        where, params = filters.where(now)
        return con.execute(_SERVED_SQL.format(where=where), params).df()

    forecast, note = _forecast(ctx, live_file)
    rows = ctx.queries.answer(("policy-served", filters), served, filters)
    return PolicyData(
        live_file, snap.policy_version if snap is not None else (versions[-1].version if versions else None),
        snap.reload_error if snap is not None else None, versions, rows, diffs(versions), forecast, note,
    )  # fmt: skip


def _forecast(ctx: Context, live_file: str | None) -> tuple[dict[str, Any] | None, str]:
    """(forecast_report, note): the recorded forecast of the live version vs the log since."""
    if live_file is None:
        return None, "no live policy file known (the page was started without a gateway or --policy)"
    from ..policy.lifecycle import recorded_forecast
    from ..policy.versions import ForecastRecordError
    from ..replay.forecast import NoForecastRecorded, forecast_report

    try:
        record = recorded_forecast(live_file)
    except ForecastRecordError as exc:  # a damaged record file: said on the page, figures without it
        return None, str(exc)
    if record is None:
        return None, (
            "no forecast was recorded for the live version: promote a candidate with "
            "`llmgw policy promote CANDIDATE --data-dir DIR` to record one"
        )

    def compute(con: Any, now: float) -> dict[str, Any] | None:
        try:
            return forecast_report(live_file, ctx.data_dir)
        except NoForecastRecorded:
            return None

    key = ("forecast", record["version"], record["promoted_at"], int(ctx.queries.clock() // FORECAST_TTL_S))
    return ctx.queries.answer(key, compute), ""


__all__ = ["PolicyData", "PolicyVersion", "diffs", "history", "policy"]
