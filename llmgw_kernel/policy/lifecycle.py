"""Policy lifecycle: the live file, its history, promote / rollback / diff.

The live policy is a YAML file (``policies/live.yaml`` by default) plus the rule modules it
names (``rule: tiers:f`` -> ``policies/tiers.py``): together they are one *version* (the
modules' content is part of the version id). Promotion validates the candidate *as it will
be live* (with the modules it brings, else the ones already beside the live file), archives
the version it replaces under ``history/`` beside it (YAML and modules), installs the
candidate's modules, then swaps the live file atomically (write to a temporary file in the
same folder, then ``os.replace``), so a running server that polls the file sees either the
old policy or the new one, never half. Rollback puts the newest archived version that still
validates back, byte for byte, skipping (and naming) the ones that do not. Everything is plain
files that a team can commit: a promotion is a reviewable diff. Paths are taken as given
(relative to the working directory), so both work from anywhere.

A promotion can record the forecast it was based on (``promote(..., forecast=)``: the
figures of a replay of the candidate over a recent window, ``llmgw_kernel.replay.forecast``);
it is kept under ``history/<stem>/forecasts/`` keyed by the version, and
:func:`recorded_forecast` finds the live version's for ``llmgw forecast check``.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..durable import write_atomic
from . import versions
from .load import PolicyError, canonical_policy, load_policy
from .model import Policy
from .versions import HISTORY_DIR, ROLLED_BACK, history_dir

log = logging.getLogger("llmgw.policy")

__all__ = [
    "HISTORY_DIR", "Change", "bundled_default_text", "diff", "ensure_live_policy", "history", "history_dir",
    "promote", "recorded_forecast", "rollback",
]  # fmt: skip


@dataclass(frozen=True)
class Change:
    """What a promote or rollback did."""

    live: Path
    old_version: str | None
    new_version: str
    archived: Path | None
    modules: list[str] = field(default_factory=list)  # rule modules written beside the live file
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # rollback: invalid entries passed over
    forecast: Path | None = None  # promote: the recorded forecast of the new version (None: none recorded)


def bundled_default_text() -> str:
    return resources.files("llmgw_kernel").joinpath("defaults/default_policy.yaml").read_text(encoding="utf-8")


def ensure_live_policy(path: Path) -> bool:
    """Create ``path`` from the bundled default if it does not exist. True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, bundled_default_text().encode("utf-8"))
    return True


def history(live: str | os.PathLike[str]) -> list[Path]:
    """Archived versions of ``live``, oldest first (folders; plain .yaml files from before
    modules were archived)."""
    return versions.entries(Path(live))


Forecast = Mapping[str, Any] | Callable[[Policy], Mapping[str, Any] | None] | None


def promote(candidate: str | os.PathLike[str], live: str | os.PathLike[str], forecast: Forecast = None) -> Change:
    """Make ``candidate`` (and its rule modules) the live policy; the replaced version goes to
    history.

    ``forecast`` is the forecast the promotion is based on (a dict from
    ``llmgw_kernel.replay.forecast.forecast_for``), or a function of the validated candidate
    that returns one (or None: nothing to record); a function runs before anything changes,
    so a failing replay leaves the live policy as it was. It is recorded with the promotion
    time, keyed by the new version (:func:`recorded_forecast`).

    Raises :class:`PolicyError` (and changes nothing) if the candidate would not validate as
    the live policy.
    """
    live_path = Path(live)
    new_version = versions.read_file_version(Path(candidate))
    new = versions.validate_as_live(new_version, live_path)
    figures = forecast(new) if callable(forecast) else forecast
    old_version = versions.version_or_none(live_path) if live_path.exists() else None
    archived = versions.archive(live_path, old_version) if live_path.exists() else None
    promoted_at = datetime.now(UTC).isoformat()  # rows from here on are checked against the forecast
    written = versions.install(new_version, live_path)
    recorded = None
    if figures is not None:
        record = {"version": new.version, "promoted_at": promoted_at, "candidate": str(candidate),
                  "replaced": old_version, "forecast": dict(figures)}  # fmt: skip
        recorded = versions.write_forecast(live_path, new.version, record)
    return Change(live_path, old_version, new.version, archived, written, forecast=recorded)


def _renew_forecast(live: Path, version: str, since: str) -> Path | None:
    """A version rolled back to is checked against its own forecast again, from the time it
    came back (not from its first promotion, which would count the replaced version's rows)."""
    try:
        previous = versions.latest_forecast(live, version)
    except versions.ForecastRecordError as exc:  # the rollback stands; only its forecast is not renewed
        log.warning("%s (the restored version's forecast is not recorded again)", exc)
        return None
    if previous is None:
        return None
    record = {k: v for k, v in previous.items() if k != "path"}
    return versions.write_forecast(live, version, {**record, "promoted_at": since, "restored_from": previous["path"]})


def recorded_forecast(live: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The forecast recorded when the live policy's version was (last) promoted: ``{"version",
    "promoted_at", "candidate", "replaced", "forecast", "path"}``; None if none was recorded
    (promoted without a log, installed by hand, or an invalid live file)."""
    live_path = Path(live)
    version = versions.version_or_none(live_path)
    return versions.latest_forecast(live_path, version) if version is not None else None


def rollback(live: str | os.PathLike[str]) -> Change:
    """Put back the newest archived version that validates as the live policy (its file byte
    for byte, and its modules); the current one goes to ``rolled-back/``. Newer entries that
    do not validate are skipped and listed in :attr:`Change.skipped` (they stay in history).
    If the restored version was promoted with a forecast, that forecast is recorded again from
    now (:attr:`Change.forecast`), so ``forecast check`` compares it with the rows since.

    Raises ``FileNotFoundError`` if no archived version validates.
    """
    live_path = Path(live)
    entries = history(live_path)
    if not entries:
        raise FileNotFoundError(f"no history for {live_path} (looked in {history_dir(live_path)})")
    skipped: list[tuple[Path, str]] = []
    for entry in reversed(entries):
        version = versions.read_entry(entry)
        try:
            restored = versions.validate_as_live(version, live_path)
        except PolicyError as exc:
            skipped.append((entry, "; ".join(f"{p or '<root>'}: {m}" for p, m in exc.errors)))
            continue
        old_version = versions.version_or_none(live_path) if live_path.exists() else None
        archived = None
        if live_path.exists():
            archived = versions.archive(live_path, old_version, history_dir(live_path) / ROLLED_BACK)
        restored_at = datetime.now(UTC).isoformat()
        written = versions.install(version, live_path)
        versions.remove_entry(entry)
        recorded = _renew_forecast(live_path, restored.version, restored_at)
        return Change(live_path, old_version, restored.version, archived, written, skipped, recorded)
    listed = "".join(f"\n  skipped {e.name}: {why}" for e, why in skipped)
    raise FileNotFoundError(f"no archived version of {live_path} validates as the live policy:{listed}")


def diff(a: str | os.PathLike[str] | Policy, b: str | os.PathLike[str] | Policy) -> str:
    """A unified diff of two policies' canonical forms (defaults filled in, keys sorted),
    headed by their versions. Empty when they are the same policy."""
    pa, pb = load_policy(a), load_policy(b)
    if pa.version == pb.version:
        return ""
    ta = yaml.safe_dump(canonical_policy(pa), sort_keys=True).splitlines(keepends=True)
    tb = yaml.safe_dump(canonical_policy(pb), sort_keys=True).splitlines(keepends=True)
    name_a = f"{pa.source or 'a'} ({pa.version})"
    name_b = f"{pb.source or 'b'} ({pb.version})"
    return "".join(difflib.unified_diff(ta, tb, name_a, name_b))
