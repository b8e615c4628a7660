"""Secrets at rest: provider credentials encrypted with Fernet under ``LLMGW_MASTER_KEY``,
and the pepper that virtual-key hashes are keyed with.

``<data-dir>/keys/secrets.json``::

    {"version": 1, "encrypted": true, "pepper": "<Fernet token>",
     "credentials": {"openai-prod": {"provider": "openai", "token": "<Fernet token>",
                                     "created_at": 1764190000.0, "last4": "x7Qa"}}}

``LLMGW_MASTER_KEY`` is one Fernet key, or several separated by commas: the first encrypts,
any of them decrypts (MultiFernet). Rotation: put the new key first
(``LLMGW_MASTER_KEY=new,old``) and run ``llmgw keys rotate-master``, which re-encrypts every
stored secret with the new key (atomically); then drop the old one from the variable.

Without a master key the gateway still hashes virtual keys (the pepper is then kept in the
file unencrypted, readable by its owner only), but refuses to store provider credentials.
A wrong master key stops the server at start with a clear error; nothing is overwritten.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..durable import write_atomic

MASTER_KEY_ENV = "LLMGW_MASTER_KEY"
FILE = "secrets.json"


class SecretsError(Exception):
    """The secrets file cannot be used as configured (wrong or missing master key, ...)."""


def keys_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "keys"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the keys directory (serialises writers across processes)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fernet(master: str | None) -> Any:
    if not master:
        return None
    from cryptography.fernet import Fernet, MultiFernet

    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in master.split(",") if k.strip()])
    except (ValueError, TypeError):
        raise SecretsError(
            f"{MASTER_KEY_ENV} is not a valid Fernet key (32 url-safe base64-encoded bytes; "
            "make one with `llmgw keys new-master`)"
        ) from None


def new_master_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class Secrets:
    """The decrypted secrets of one data directory, held in memory only."""

    def __init__(self, data_dir: str | os.PathLike[str], master_key: str | None = None) -> None:
        self.directory = keys_dir(data_dir)
        self.path = self.directory / FILE
        self._fernet = _fernet(master_key if master_key is not None else os.environ.get(MASTER_KEY_ENV))
        self.pepper = b""
        self._credentials: dict[str, dict[str, Any]] = {}  # name -> meta incl. decrypted "api_key"
        self._load()

    @property
    def can_store_credentials(self) -> bool:
        return self._fernet is not None

    def _decrypt(self, token: str, what: str) -> bytes:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise SecretsError(
                f"{MASTER_KEY_ENV} does not decrypt {what} in {self.path}: wrong master key "
                "(nothing was changed; start with the key the secrets were stored with)"
            ) from None

    def _load(self) -> None:
        with locked(self.directory):
            if not self.path.exists():
                self.pepper = secrets.token_bytes(32)
                self._save_locked()
                return
            doc = orjson.loads(self.path.read_bytes())
            if doc.get("encrypted"):
                if self._fernet is None:
                    raise SecretsError(
                        f"{self.path} is encrypted but {MASTER_KEY_ENV} is not set: set it to the master key"
                    )
                self.pepper = self._decrypt(doc["pepper"], "the key-hashing pepper")
                for name, meta in doc.get("credentials", {}).items():
                    api_key = self._decrypt(meta["token"], f"credential {name!r}").decode()
                    self._credentials[name] = {**{k: v for k, v in meta.items() if k != "token"}, "api_key": api_key}
            else:
                self.pepper = base64.b64decode(doc["pepper"])
                if self._fernet is not None:  # a master key was configured since: encrypt now
                    self._save_locked()

    def _save_locked(self) -> None:
        if self._fernet is None:
            pepper = base64.b64encode(self.pepper).decode()
            doc = {"version": 1, "encrypted": False, "pepper": pepper, "credentials": {}}
        else:
            creds = {
                name: {**{k: v for k, v in meta.items() if k != "api_key"},
                       "token": self._fernet.encrypt(meta["api_key"].encode()).decode()}
                for name, meta in self._credentials.items()
            }  # fmt: skip
            doc = {"version": 1, "encrypted": True, "pepper": self._fernet.encrypt(self.pepper).decode(),
                   "credentials": creds}  # fmt: skip
        write_atomic(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2), mode=0o600)

    # -- provider credentials ------------------------------------------------------------------

    def put_credential(self, name: str, provider: str, api_key: str) -> dict[str, Any]:
        if self._fernet is None:
            raise SecretsError(f"set {MASTER_KEY_ENV} to store provider credentials (they are kept encrypted)")
        meta = {"provider": provider, "created_at": time.time(), "last4": api_key[-4:], "api_key": api_key}
        with locked(self.directory):
            self._save_with(name, meta)
        return self.describe(name)

    def delete_credential(self, name: str) -> bool:
        with locked(self.directory):
            if name not in self._credentials:
                return False
            self._save_with(name, None)
        return True

    def _save_with(self, name: str, meta: dict[str, Any] | None) -> None:
        """Store (``meta``) or delete (None) credential ``name`` on disk, then in memory: a write
        that fails (a full disk) raises and changes neither."""
        before = self._credentials.copy()
        if meta is None:
            del self._credentials[name]
        else:
            self._credentials[name] = meta
        try:
            self._save_locked()
        except BaseException:
            self._credentials = before
            raise

    def credential(self, name: str) -> str | None:
        meta = self._credentials.get(name)
        return meta["api_key"] if meta else None

    def describe(self, name: str) -> dict[str, Any]:
        meta = self._credentials[name]
        return {"name": name, "provider": meta["provider"], "created_at": meta["created_at"],
                "api_key": "****" + meta["last4"]}  # fmt: skip

    def names(self) -> list[str]:
        return sorted(self._credentials)

    def rotate_master(self) -> int:
        """Re-encrypt every stored secret with the first master key; returns how many."""
        if self._fernet is None:
            raise SecretsError(f"{MASTER_KEY_ENV} is not set")
        with locked(self.directory):
            self._save_locked()
        return 1 + len(self._credentials)
