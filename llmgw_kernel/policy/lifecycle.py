"""Policy lifecycle: the live file, its history, promote / rollback / diff.

The live policy is a YAML file (``policies/live.yaml`` by default). Promotion validates the
candidate, archives the file it replaces under ``history/`` beside it, and swaps the live
file atomically (write to a temporary file in the same folder, then ``os.replace``), so a
running server that polls the file sees either the old policy or the new one, never half.
Everything is plain files that a team can commit: a promotion is a reviewable diff.
"""

from __future__ import annotations

import difflib
import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .load import PolicyError, canonical_policy, load_policy
from .model import Policy

HISTORY_DIR = "history"


@dataclass(frozen=True)
class Change:
    """What a promote or rollback did."""

    live: Path
    old_version: str | None
    new_version: str
    archived: Path | None


def bundled_default_text() -> str:
    return resources.files("llmgw_kernel").joinpath("defaults/default_policy.yaml").read_text(encoding="utf-8")


def ensure_live_policy(path: Path) -> bool:
    """Create ``path`` from the bundled default if it does not exist. True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, bundled_default_text())
    return True


def history_dir(live: Path) -> Path:
    return live.parent / HISTORY_DIR / live.stem


def history(live: Path) -> list[Path]:
    """Archived versions of ``live``, oldest first."""
    folder = history_dir(live)
    return sorted(folder.glob("*.yaml")) if folder.exists() else []


def promote(candidate: str | os.PathLike[str], live: str | os.PathLike[str]) -> Change:
    """Make ``candidate`` the live policy; the replaced file goes to history.

    Raises :class:`PolicyError` (and changes nothing) if the candidate does not validate.
    """
    live_path = Path(live)
    new = load_policy(candidate)
    text = Path(candidate).read_text(encoding="utf-8")
    old_version = _version_or_none(live_path)
    archived = _archive(live_path, old_version) if live_path.exists() else None
    live_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(live_path, text)
    return Change(live_path, old_version, new.version, archived)


def rollback(live: str | os.PathLike[str]) -> Change:
    """Put back the most recently archived version; the current one goes to ``rolled-back/``."""
    live_path = Path(live)
    entries = history(live_path)
    if not entries:
        raise FileNotFoundError(f"no history for {live_path} (looked in {history_dir(live_path)})")
    previous = entries[-1]
    restored = load_policy(previous)  # refuse to restore something that no longer validates
    old_version = _version_or_none(live_path)
    archived = None
    if live_path.exists():
        folder = history_dir(live_path) / "rolled-back"
        folder.mkdir(parents=True, exist_ok=True)
        archived = folder / f"{_stamp()}-{old_version or 'invalid'}.yaml"
        shutil.copy2(live_path, archived)
    _atomic_write(live_path, previous.read_text(encoding="utf-8"))
    previous.unlink()
    return Change(live_path, old_version, restored.version, archived)


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


def _version_or_none(path: Path) -> str | None:
    try:
        return load_policy(path).version
    except (PolicyError, OSError):
        return None


def _archive(live: Path, version: str | None) -> Path:
    folder = history_dir(live)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_stamp()}-{version or 'invalid'}.yaml"
    shutil.copy2(live, target)
    return target


def _stamp() -> str:
    t = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int(t * 1e6) % 1_000_000:06d}Z"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
