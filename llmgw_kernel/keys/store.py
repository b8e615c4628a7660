"""Virtual keys: issued once, stored only as a keyed hash, versioned as an append-only history.

``<data-dir>/keys/events.jsonl`` holds one JSON line per change — ``create``, ``update``,
``revoke``, ``rotate`` — each with its time and the key's full settings after the change.
The current keys are the fold of that history; replay asks :meth:`KeyHistory.at` for the
settings in force when a request arrived. The key itself never touches the disk: only
``HMAC-SHA256(pepper, key)`` (the pepper lives encrypted in ``secrets.json``) and its last 4
characters for display.

A key looks like ``sk-llmgw-<id>-<secret>``: the id (12 hex digits) finds the record, the
HMAC of the whole key is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson

from .secrets import keys_dir, locked

log = logging.getLogger("llmgw.keys")

EVENTS = "events.jsonl"
Window = Literal["day", "week", "month"]
_KEY = re.compile(r"^sk-llmgw-([0-9a-f]{12})-[A-Za-z0-9_-]{20,}$")
_SETTINGS = ("name", "team", "user", "models", "budget_usd", "budget_window", "rpm", "tpm", "expires_at", "metadata")


@dataclass(frozen=True)
class KeySettings:
    """What an admin sets on a key (every field optional but the name)."""

    name: str
    team: str | None = None
    user: str | None = None
    models: tuple[str, ...] | None = None  # None: every route
    budget_usd: float | None = None
    budget_window: Window = "month"
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None  # epoch seconds
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VirtualKey:
    id: str
    settings: KeySettings
    hash: str  # HMAC-SHA256(pepper, key), hex
    last4: str
    created_at: float
    updated_at: float
    revoked_at: float | None = None
    version: int = 1  # bumps on every change

    @property
    def masked(self) -> str:
        return f"sk-llmgw-{self.id}-****{self.last4}"

    def state(self, now: float) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.settings.expires_at is not None and self.settings.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: float | None = None) -> dict[str, Any]:
        """What the admin API shows: never the key, never its hash."""
        s = asdict(self.settings)
        s["models"] = list(self.settings.models) if self.settings.models is not None else None
        return {
            "id": self.id, "key": self.masked, **s, "state": self.state(now if now is not None else time.time()),
            "created_at": self.created_at, "updated_at": self.updated_at, "revoked_at": self.revoked_at,
            "version": self.version,
        }  # fmt: skip


def settings_from(data: dict[str, Any], base: KeySettings | None = None) -> KeySettings:
    """Validated settings from API input (``base``: the current ones, for a PATCH)."""
    unknown = set(data) - set(_SETTINGS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    merged = {**(asdict(base) if base else {}), **data}
    name = merged.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValueError("name: a non-empty string of at most 200 characters is required")
    for k in ("team", "user"):
        if merged.get(k) is not None and not isinstance(merged[k], str):
            raise ValueError(f"{k}: must be a string")
    models = merged.get("models")
    if models is not None:
        if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
            raise ValueError("models: must be a list of route names")
        models = tuple(models)
    budget = merged.get("budget_usd")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 <= budget < math.inf
    ):
        raise ValueError("budget_usd: must be a finite number >= 0")
    window: Window = merged.get("budget_window") or "month"
    if window not in ("day", "week", "month"):
        raise ValueError("budget_window: must be day, week or month")
    for k in ("rpm", "tpm"):
        v = merged.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{k}: must be an integer >= 1")
    expires = _expires_at(merged.get("expires_at"), given="expires_at" in data)
    meta = merged.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError("metadata: must be an object")
    return KeySettings(
        name=name.strip(), team=merged.get("team"), user=merged.get("user"), models=models,
        budget_usd=float(budget) if budget is not None else None, budget_window=window,
        rpm=merged.get("rpm"), tpm=merged.get("tpm"), expires_at=expires,
        metadata=meta,
    )  # fmt: skip


def _expires_at(value: Any, given: bool) -> float | None:
    """``expires_at`` (ISO 8601 or epoch seconds) as epoch seconds. A time given in this call
    must be in the future: a key born expired (or a NaN that never compares as passed) is a
    mistake, and a key is ended now with ``revoke``. A stored one (a PATCH of other fields) may
    have passed."""
    what = "expires_at: an ISO 8601 time (2026-12-31T00:00:00Z) or epoch seconds"
    if value is None:
        return None
    if isinstance(value, str):
        from datetime import datetime

        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ValueError(what) from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(what)
    if given and value <= time.time():
        raise ValueError("expires_at: must be in the future (to end a key now, revoke it)")
    return float(value)


def _settings_json(s: KeySettings) -> dict[str, Any]:
    d = asdict(s)
    d["models"] = list(s.models) if s.models is not None else None
    return d


def _settings_of(d: dict[str, Any]) -> KeySettings:
    d = dict(d)
    d["models"] = tuple(d["models"]) if d.get("models") is not None else None
    return KeySettings(**d)


class KeyHistory:
    """Every version of every key, from the events file: what was in force when.

    Built by folding events one at a time (:meth:`apply`, O(1) each), so a new event never
    costs a rebuild of the whole history."""

    def __init__(self, events: Iterable[dict[str, Any]] = ()) -> None:
        self.events: list[dict[str, Any]] = []
        self._by_id: dict[str, list[tuple[float, VirtualKey]]] = {}
        self.current: dict[str, VirtualKey] = {}
        for ev in events:
            self.apply(ev)

    def apply(self, ev: dict[str, Any]) -> VirtualKey | None:
        """Fold one event in; None (and a warning) for an event about a key never created."""
        before = self.current.get(ev["id"])
        if before is None and ev["type"] != "create":
            log.warning("key history: %s event for unknown key %s skipped", ev["type"], ev["id"])
            return None
        key = _apply(before, ev)
        self.events.append(ev)
        self._by_id.setdefault(ev["id"], []).append((ev["ts"], key))
        self.current[ev["id"]] = key  # last: a reader sees the key only once its history has it
        return key

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> KeyHistory:
        path = keys_dir(data_dir) / EVENTS
        if not path.exists():
            return cls()
        events, _ = parse_events(path.read_bytes())
        return cls(events)

    def version(self, key_id: str, version: int) -> VirtualKey | None:
        """The key as it was at one version of its settings."""
        for _, key in self._by_id.get(key_id, ()):
            if key.version == version:
                return key
        return None

    def at(self, key_id: str, ts: float) -> VirtualKey | None:
        """The key as it was at ``ts`` (None: it did not exist yet)."""
        found = None
        for at, key in self._by_id.get(key_id, ()):
            if at > ts:
                break
            found = key
        return found


def parse_events(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """(events, bytes consumed) of a journal chunk. Only newline-terminated lines count: a
    torn last line (a crash mid-write) is left unconsumed; an undecodable complete line is
    skipped with a warning rather than hiding every later event."""
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].split(b"\n"):
        if line.strip():
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("key history: an unreadable line of %d bytes skipped", len(line))
    return events, end


def _apply(key: VirtualKey | None, ev: dict[str, Any]) -> VirtualKey:
    kind, ts = ev["type"], ev["ts"]
    if kind == "create":
        return VirtualKey(ev["id"], _settings_of(ev["settings"]), ev["hash"], ev["last4"], ts, ts)
    assert key is not None, f"event {kind} for unknown key {ev['id']}"
    if kind == "update":
        return replace(key, settings=_settings_of(ev["settings"]), updated_at=ts, version=key.version + 1)
    if kind == "revoke":
        return replace(key, revoked_at=ts, updated_at=ts, version=key.version + 1)
    if kind == "rotate":
        return replace(key, hash=ev["hash"], last4=ev["last4"], updated_at=ts, version=key.version + 1)
    raise ValueError(f"unknown key event {kind!r}")


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class KeyStore:
    """The live keys of a data directory.

    Writes are linearisable and cost O(1) whatever the number of keys: under one lock (a
    thread lock, then the directory's file lock) a write first folds in any events another
    writer appended since (the journal is the truth; this process tracks how far it has
    read), then appends its own line(s) with one fsync and folds them into the in-memory
    indexes. Once a write returns, the key is usable by the very next request. Reads
    (:meth:`authenticate`) are dict lookups and take no lock."""

    def __init__(self, data_dir: str | os.PathLike[str], pepper: bytes) -> None:
        self.directory = keys_dir(data_dir)
        self.path = self.directory / EVENTS
        self._pepper = pepper
        self._lock = threading.Lock()
        self._offset = 0  # bytes of the journal folded into self.history
        self.history = KeyHistory()
        self._seen: set[str] = set()  # identities of the events folded (event_identity)
        #: called with the events of each write once they are durable (the shared-state key sync)
        self.on_commit: Callable[[list[dict[str, Any]]], None] | None = None
        #: a replica of a group sharing this directory writes here itself (the file lock orders the writers)
        self.replica = False
        if self.path.exists():
            with self._lock:
                self._catch_up(self.path.read_bytes())
        self._dummy = self._hash("sk-llmgw-000000000000-" + "x" * 43)

    @property
    def keys(self) -> dict[str, VirtualKey]:
        """id -> current key. Iterate over :meth:`snapshot` instead: writers add to this dict."""
        return self.history.current

    def snapshot(self) -> list[VirtualKey]:
        """Every key, as of one instant (safe while other threads write)."""
        with self._lock:
            return list(self.history.current.values())

    @property
    def enforcing(self) -> bool:
        """Once any key exists (even revoked), every request must present a valid one."""
        return bool(self.history.current)

    def _hash(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def _catch_up(self, tail: bytes) -> None:
        events, used = parse_events(tail)
        for ev in events:
            self.history.apply(ev)
            self._seen.add(event_identity(ev))
        self._offset += used

    def _append(self, fd: int, events: list[dict[str, Any]]) -> list[VirtualKey]:
        """Write ``events`` at the end of the journal with one fsync and fold them in (under the locks)."""
        data = b"".join(orjson.dumps(ev) + b"\n" for ev in events)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        self._offset += len(data)
        self._seen.update(event_identity(ev) for ev in events)
        return [key for ev in events if (key := self.history.apply(ev)) is not None]

    def _open_caught_up(self) -> int:
        """The journal opened for appending, with whatever another process appended folded in
        first (and a torn last line cut off). Call under both locks."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        size = os.fstat(fd).st_size
        if size > self._offset:  # another process wrote, or a crash left a torn line
            self._catch_up(os.pread(fd, size - self._offset, self._offset))
            if size > self._offset:
                log.warning("key history: a torn last line (%d bytes) dropped", size - self._offset)
                os.ftruncate(fd, self._offset)
        return fd

    def _commit(self, build: Callable[[], list[dict[str, Any]]]) -> list[VirtualKey]:
        """Append the events ``build`` makes (called under the lock, after catching up) and
        fold them in; returns the keys they produce."""
        if not self.replica:
            _refuse_behind_a_server(self.directory.parent)
        with self._lock, locked(self.directory):
            fd = self._open_caught_up()
            try:
                events = build()
                keys = self._append(fd, events)
            finally:
                os.close(fd)
        if self.on_commit is not None:
            self.on_commit(events)
        return keys

    def apply_remote(self, events: Iterable[dict[str, Any]]) -> int:
        """Fold in events another replica wrote (the shared-state key sync), appending the
        ones this directory does not hold yet; returns how many were new."""
        with self._lock, locked(self.directory):
            fd = self._open_caught_up()
            try:
                fresh = list({event_identity(ev): ev for ev in events if event_identity(ev) not in self._seen}.values())
                if fresh:
                    self._append(fd, fresh)
            finally:
                os.close(fd)
        return len(fresh)

    def events_since(self, start: int) -> list[dict[str, Any]]:
        """The events folded into this store from position ``start`` on (its whole history from 0)."""
        with self._lock:
            return self.history.events[start:]

    def _new_key(self, settings: KeySettings, now: float, taken: set[str]) -> tuple[dict[str, Any], str]:
        key_id = secrets.token_hex(6)
        while key_id in self.history.current or key_id in taken:
            key_id = secrets.token_hex(6)
        taken.add(key_id)
        plain = f"sk-llmgw-{key_id}-{secrets.token_urlsafe(32)}"
        ev = {"ts": now, "type": "create", "id": key_id, "settings": _settings_json(settings),
              "hash": self._hash(plain), "last4": plain[-4:]}  # fmt: skip
        return ev, plain

    def create(self, settings: KeySettings) -> tuple[VirtualKey, str]:
        """A new key: (its record, the key itself — shown once, never stored)."""
        [(record, plain)] = self.create_many([settings])
        return record, plain

    def create_many(self, many: Iterable[KeySettings]) -> list[tuple[VirtualKey, str]]:
        """Several new keys in one write (one fsync): seeding or importing thousands of keys."""
        plains: list[str] = []

        def build() -> list[dict[str, Any]]:
            now, taken, events = time.time(), set[str](), list[dict[str, Any]]()
            for settings in many:
                ev, plain = self._new_key(settings, now, taken)
                events.append(ev)
                plains.append(plain)
            return events

        return list(zip(self._commit(build), plains, strict=True))

    def _change(self, ev: dict[str, Any]) -> VirtualKey:
        def build() -> list[dict[str, Any]]:
            if ev["id"] not in self.history.current:
                raise KeyError(ev["id"])
            return [{"ts": time.time(), **ev}]

        [key] = self._commit(build)
        return key

    def update(self, key_id: str, settings: KeySettings) -> VirtualKey:
        return self._change({"type": "update", "id": key_id, "settings": _settings_json(settings)})

    def revoke(self, key_id: str) -> VirtualKey:
        return self._change({"type": "revoke", "id": key_id})

    def rotate(self, key_id: str) -> tuple[VirtualKey, str]:
        plain = f"sk-llmgw-{key_id}-{secrets.token_urlsafe(32)}"
        return self._change({"type": "rotate", "id": key_id, "hash": self._hash(plain), "last4": plain[-4:]}), plain

    def authenticate(self, presented: str | None, now: float) -> VirtualKey:
        """The key a request presented, or :class:`AuthError` (401: missing, unknown, revoked, expired)."""
        if not presented:
            raise AuthError(401, "missing_api_key", "No API key provided: send Authorization: Bearer <virtual key>")
        m = _KEY.match(presented)
        record = self.keys.get(m.group(1)) if m else None
        digest = self._hash(presented)
        if record is None or not hmac.compare_digest(digest, record.hash):
            hmac.compare_digest(digest, self._dummy)  # the same work whether or not the id exists
            raise AuthError(401, "invalid_api_key", "Incorrect API key provided")
        state = record.state(now)
        if state == "revoked":
            raise AuthError(401, "key_revoked", f"This API key ({record.masked}) has been revoked")
        if state == "expired":
            raise AuthError(401, "key_expired", f"This API key ({record.masked}) has expired")
        return record


class KeyStoreBusy(RuntimeError):
    """Another process serves this data directory: its keys change through that server."""


def _refuse_behind_a_server(data_dir: Path) -> None:
    """Raise :class:`KeyStoreBusy` when a process other than this one holds the data
    directory (``llmgw serve``: datadir.py). That server would not see a key written here
    until its own next write; the admin API (``llmgw keys ...``) changes its memory and the
    file together. Asks the kernel (:func:`~llmgw_kernel.datadir.holder_of`), so a pid left in
    the lock file by a killed server — or reused since by another process — never counts."""
    from ..datadir import holder_of

    holder = holder_of(data_dir)
    if holder is None:
        return
    pid = holder.get("pid")
    if pid == os.getpid():
        return
    raise KeyStoreBusy(
        f"{data_dir} is in use by {holder.get('command') or 'llmgw serve'} (pid {pid or '?'}): create, change "
        "and revoke keys through its admin API (`llmgw keys ... --url`), which updates the running server too"
    )


def may_use(key: VirtualKey | None, route: str) -> bool:
    """Whether ``key`` may use ``route`` (no key, or a key without a model list: every route).
    The one rule behind the 403 below, what ``/v1/models`` lists and what an unknown-model 404
    names as available, so a limited key is never shown the routes it may not use."""
    return key is None or key.settings.models is None or route in key.settings.models


def usable_routes(key: VirtualKey | None, routes: Iterable[str]) -> list[str]:
    """The routes among ``routes`` that ``key`` may use, in their order."""
    return [route for route in routes if may_use(key, route)]


def check_model(key: VirtualKey, route: str) -> None:
    """403 when ``key`` may not use ``route``."""
    if not may_use(key, route):
        allowed: list[str] = list(key.settings.models or ())
        names = ", ".join(allowed) or "none"
        raise AuthError(403, "model_not_allowed", f"This API key may not use model {route!r} (allowed: {names})")


def event_identity(ev: dict[str, Any]) -> str:
    """What makes one event itself, wherever it was copied: its key, time and kind."""
    return f"{ev['id']}|{ev['ts']!r}|{ev['type']}"


def events_path(data_dir: str | os.PathLike[str]) -> Path:
    return keys_dir(data_dir) / EVENTS
