"""A policy *version* as files: the YAML and the rule modules it names (``rule: module:func``),
whose content is part of the version id. Promote and rollback move whole versions: this
module reads a version, validates it as it would be live, installs it beside the live file
and archives it under ``history/`` (docs/policy.md#lifecycle).

A history entry is a folder ``history/<live stem>/<UTC stamp>-<version>/`` holding
``policy.yaml`` (the live file's bytes) and its modules at their relative paths
(``tiers.py``, ``pkg/mod.py``). Entries written before modules were archived are plain
``<stamp>-<version>.yaml`` files; they are read as versions without modules (the live
folder's modules complete them).

The forecast a promotion was based on is kept beside the history, keyed by the version it
forecast: ``history/<live stem>/forecasts/<UTC stamp>-<version>.json`` (``{"version",
"promoted_at", "candidate", "forecast"}``, docs/forecast.md). It is written when the version
becomes live (there is no history entry for the live version yet: an entry is made when a
version is replaced), and stays when the version is later archived or rolled back to, so the
forecast of any version that was ever promoted can be found by its id.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..durable import write_atomic
from .extras import load_servable
from .functions import rule_module_files
from .load import PolicyError, load_policy, parse_policy_text
from .model import Policy

HISTORY_DIR = "history"
ROLLED_BACK = "rolled-back"
FORECASTS = "forecasts"
ENTRY_POLICY = "policy.yaml"


@dataclass(frozen=True)
class Version:
    """A policy's YAML bytes and its rule modules' bytes (relative path -> content)."""

    text: bytes
    modules: dict[str, bytes] = field(default_factory=dict)


def history_dir(live: Path) -> Path:
    return live.parent / HISTORY_DIR / live.stem


def module_refs(text: bytes) -> list[str]:
    """The rule module files a policy text names (none if it does not parse)."""
    try:
        return rule_module_files(parse_policy_text(text.decode("utf-8")))
    except (PolicyError, UnicodeDecodeError):
        return []


def read_file_version(policy_file: Path) -> Version:
    """The version a policy file is, with the modules it names that exist beside it."""
    text = policy_file.read_bytes()
    modules = {}
    for rel in module_refs(text):
        path = policy_file.parent / rel
        if path.is_file():
            modules[rel] = path.read_bytes()
    return Version(text, modules)


def read_entry(entry: Path) -> Version:
    """A history entry: a folder (policy.yaml + modules) or a legacy .yaml file (no modules)."""
    if entry.is_dir():
        return read_file_version(entry / ENTRY_POLICY)
    return Version(entry.read_bytes())


def validate_as_live(version: Version, live: Path) -> Policy:
    """Validate ``version`` as it will be once installed beside ``live``: with its own modules,
    and for a module it does not carry, the one already in the live folder; servable by this
    installation (:func:`~.extras.missing_extras`). Raises
    :class:`PolicyError` (naming the live file) if it would not validate there."""
    with tempfile.TemporaryDirectory(prefix="llmgw-policy-") as tmp:
        staged = Path(tmp) / live.name
        staged.write_bytes(version.text)
        for rel in module_refs(version.text):
            content = version.modules.get(rel)
            if content is None and (live.parent / rel).is_file():
                content = (live.parent / rel).read_bytes()
            if content is not None:
                (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / rel).write_bytes(content)
        try:
            return load_servable(staged)  # as the server would load it: with the extras it needs
        except PolicyError as exc:
            folder = live.parent.absolute()
            here = [(str(Path(tmp).resolve()), str(folder)), (Path(tmp).resolve().name + "/", folder.name + "/")]
            errors = [(path, _replace_all(msg, here)) for path, msg in exc.errors]
            raise PolicyError(errors, f"{live} (as it would be live)") from None


def _replace_all(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def install(version: Version, live: Path) -> list[str]:
    """Write a version beside ``live``: its modules first (each atomically, unchanged ones
    left alone), then the policy file byte for byte (atomically: a server polling it sees the
    old version or the new one). Returns the modules written."""
    written = []
    for rel, content in sorted(version.modules.items()):
        target = live.parent / rel
        if target.is_file() and target.read_bytes() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, content)
        written.append(rel)
    live.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(live, version.text)
    return written


def archive(live: Path, version_id: str | None, folder: Path | None = None) -> Path:
    """Keep the live file and its modules as a history entry (or in ``folder``); an invalid
    live file is kept too, named ``-invalid``. Returns the entry's folder."""
    current = read_file_version(live)
    entry = (folder or history_dir(live)) / f"{_stamp()}-{version_id or 'invalid'}"
    entry.mkdir(parents=True)
    shutil.copy2(live, entry / ENTRY_POLICY)
    _write_modules(entry, current)
    return entry


def archive_version(live: Path, version: Version, version_id: str) -> Path:
    """Keep ``version`` (bytes read earlier: the live file has changed since) as a history entry."""
    entry = history_dir(live) / f"{_stamp()}-{version_id}"
    entry.mkdir(parents=True)
    (entry / ENTRY_POLICY).write_bytes(version.text)
    _write_modules(entry, version)
    return entry


def _write_modules(entry: Path, version: Version) -> None:
    for rel, content in version.modules.items():
        (entry / rel).parent.mkdir(parents=True, exist_ok=True)
        (entry / rel).write_bytes(content)


def is_archived(live: Path, version_id: str) -> bool:
    """Whether ``version_id`` has a history entry (rolled-back ones included)."""
    folder = history_dir(live)
    for where in (folder, folder / ROLLED_BACK):
        if where.is_dir() and any(p.name.endswith((f"-{version_id}", f"-{version_id}.yaml")) for p in where.iterdir()):
            return True
    return False


def entries(live: Path) -> list[Path]:
    """Archived versions of ``live``, oldest first."""
    folder = history_dir(live)
    if not folder.exists():
        return []
    found = [
        p for p in folder.iterdir() if (p.is_dir() and p.name not in (ROLLED_BACK, FORECASTS)) or p.suffix == ".yaml"
    ]
    return sorted(found, key=lambda p: p.name)


def write_forecast(live: Path, version_id: str, record: dict[str, Any]) -> Path:
    """Keep the forecast ``record`` of ``version_id`` (atomically). Returns its file."""
    folder = history_dir(live) / FORECASTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_stamp()}-{version_id}.json"
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True, default=str).encode("utf-8"))
    return path


class ForecastRecordError(ValueError):
    """A recorded forecast file that is not one (truncated by a full disk or a crash, edited)."""


def latest_forecast(live: Path, version_id: str) -> dict[str, Any] | None:
    """The newest forecast recorded for ``version_id`` (its last promotion), or None.
    Raises :class:`ForecastRecordError` naming the file when it is not a forecast record."""
    folder = history_dir(live) / FORECASTS
    found = sorted(folder.glob(f"*-{version_id}.json")) if folder.is_dir() else []
    if not found:
        return None
    try:
        record = json.loads(found[-1].read_text(encoding="utf-8"))
        why = _record_problem(record, version_id)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    if why is not None:
        raise ForecastRecordError(
            f"{found[-1]}: not a forecast record ({why}); promote the version again to record one"
        )
    record["path"] = str(found[-1])
    return record  # type: ignore[no-any-return]


def _record_problem(record: Any, version_id: str) -> str | None:
    """Why ``record`` is not what :func:`.lifecycle.promote` writes, or None."""
    from datetime import datetime

    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if record.get("version") != version_id:
        return f"its version is {record.get('version')!r}, its name says {version_id}"
    try:
        datetime.fromisoformat(record["promoted_at"])
    except (KeyError, TypeError, ValueError):
        return f"promoted_at {record.get('promoted_at')!r} is not an ISO 8601 time"
    forecast = record.get("forecast")
    if not isinstance(forecast, dict) or not all(
        isinstance(forecast.get(k), dict) for k in ("basis", "figures", "groups")
    ):
        return "its forecast lacks basis, figures or groups"
    return None


def remove_entry(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def version_or_none(path: Path) -> str | None:
    try:
        return load_policy(path).version
    except (PolicyError, OSError):
        return None


def _stamp() -> str:
    t = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int(t * 1e6) % 1_000_000:06d}Z"
