"""Every policy version that may have served a log: the live one and its archived history.

A log window that spans a promotion, rollback or hot reload holds rows stamped with several
``policy_version`` values. Replaying each row under the version that served it (the parity of
a live policy across reloads) needs those versions as policies: :func:`served_policies`
loads them from the live file's history (``history/<live stem>/<stamp>-<version>/`` with the
rule modules archived beside ``policy.yaml``; legacy ``<stamp>-<version>.yaml`` files; the
``rolled-back/`` folder, whose versions served too) plus the live file itself.

An archived version is loaded with its own rule modules; a legacy entry that carries none
borrows the live folder's (as ``llmgw policy rollback`` would). Entries that do not validate
(archived ``-invalid`` files, or modules gone) are skipped: rows they served cannot be
replayed under them, and :func:`missing_versions` names such versions.

>>> import tempfile, pathlib
>>> live = pathlib.Path(tempfile.mkdtemp()) / "live.yaml"
>>> _ = live.write_text("providers: {d: {kind: demo}}\\nroutes: {m: {targets: [{provider: d, model: e}]}}\\n")
>>> list(served_policies(live)) == [load_policy(live).version]
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..policy.load import PolicyError, load_policy
from ..policy.versions import ENTRY_POLICY, ROLLED_BACK, entries, history_dir, module_refs, read_entry, validate_as_live

if TYPE_CHECKING:
    import duckdb

    from ..policy.model import Policy


def served_policies(live_policy_path: str | os.PathLike[str]) -> dict[str, Policy]:
    """Policy version id → policy, for every archived version of ``live_policy_path`` that
    validates, and the live file itself if it validates (it wins a tie: same id, same
    decisions).

    A version replaced by editing the live file by hand is archived by the server when it
    reloads the edit; one replaced while no server ran (or by an older release) was never
    archived: its rows show up in :func:`missing_versions`."""
    live = Path(live_policy_path)
    out: dict[str, Policy] = {}
    for entry in _archived(live):
        policy = _load_entry(entry, live)
        if policy is not None:
            out.setdefault(policy.version, policy)
    try:
        current = load_policy(live)
    except PolicyError:  # absent, or edited into something invalid: the server kept the previous one
        return out
    out[current.version] = current
    return out


def missing_versions(
    policies: dict[str, Policy], log: duckdb.DuckDBPyConnection | str | os.PathLike[str], where: str | None = None
) -> list[str]:
    """The ``policy_version`` values of the log (rows matching ``where``) with no policy in
    ``policies``: rows that cannot be replayed under the version that served them."""
    from ..log.reader import open_log

    con: Any = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    clause = f" AND ({where})" if where else ""
    seen = con.execute(f"SELECT DISTINCT policy_version FROM requests WHERE policy_version IS NOT NULL{clause}")
    return sorted(v for (v,) in seen.fetchall() if v not in policies)


def _archived(live: Path) -> list[Path]:
    """History entries, oldest first, then the rolled-back ones (oldest first)."""
    rolled = history_dir(live) / ROLLED_BACK
    found = list(entries(live))
    if rolled.is_dir():
        found += sorted((p for p in rolled.iterdir() if p.is_dir() or p.suffix == ".yaml"), key=lambda p: p.name)
    return found


def _load_entry(entry: Path, live: Path) -> Policy | None:
    """An archived version as a policy: from its own folder when it holds every module it
    names (rule functions load from there), else staged beside the live folder's modules."""
    try:
        if entry.is_dir():
            policy_file = entry / ENTRY_POLICY
            refs = module_refs(policy_file.read_bytes())
            if all((entry / rel).is_file() for rel in refs):
                return load_policy(policy_file)
        return validate_as_live(read_entry(entry), live)
    except (PolicyError, OSError):
        return None
