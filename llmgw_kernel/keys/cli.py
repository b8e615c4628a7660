"""``llmgw keys ...`` and ``llmgw credentials ...``: the admin API from the command line.

Key and credential commands talk to a running server (``--url``, default
``http://127.0.0.1:8000``) with ``LLMGW_ADMIN_TOKEN``: the server is the one writer of the
key history. ``rotate-master`` and ``new-master`` work on the data directory itself.

    llmgw keys create --name ci-bot --team search --budget-usd 50 --rpm 60 --models gpt-4o-mini
    llmgw keys list [--team search]
    llmgw keys show ID | update ID --budget-usd 80 | revoke ID | rotate ID
    llmgw keys new-master                        # print a fresh Fernet key
    LLMGW_MASTER_KEY=NEW,OLD llmgw keys rotate-master --data-dir llmgw-data
    llmgw credentials add --name openai-prod --provider openai   # reads the secret from stdin
    llmgw credentials list | delete NAME
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8000"
#: the longest key id or credential name the CLI sends (percent-quoted, far below any URL limit)
MAX_SEGMENT = 1024


def _segment(value: str, what: str = "key id") -> str:
    """``value`` as one URL path segment (percent-quoted); ValueError for one that would name
    another path (empty, ``.``, ``..``, or with a ``/``): the admin token is only ever sent to
    the admin route the command means.

    >>> _segment("a b?c")
    'a%20b%3Fc'
    >>> _segment("../../etc")
    Traceback (most recent call last):
    ...
    ValueError: '../../etc' is not a valid key id (one path segment: no '/', not '.' or '..')
    >>> _segment("k" * 2000)
    Traceback (most recent call last):
    ...
    ValueError: a key id of 2,000 characters is not valid (at most 1,024)
    """
    if len(value) > MAX_SEGMENT:  # quoted, it could pass the URL length a client may send
        raise ValueError(f"a {what} of {len(value):,} characters is not valid (at most {MAX_SEGMENT:,})")
    if value in ("", ".", "..") or "/" in value:
        raise ValueError(f"{value!r} is not a valid {what} (one path segment: no '/', not '.' or '..')")
    return quote(value, safe="")


def _call(
    args: argparse.Namespace,
    method: str,
    path: str | Callable[[argparse.Namespace], str],
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> int:
    """One admin API request; ``path`` may be made from ``args`` (a ValueError from it: exit 2)."""
    import httpx

    token = os.environ.get("LLMGW_ADMIN_TOKEN")
    if not token:
        print("llmgw: set LLMGW_ADMIN_TOKEN (the server's admin token)", file=sys.stderr)
        return 2
    try:
        path = path(args) if callable(path) else path
    except ValueError as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    try:
        resp = httpx.request(
            method, args.url.rstrip("/") + path, json=body, params=params,
            headers={"Authorization": f"Bearer {token}"}, timeout=30,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        print(f"llmgw: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        data = resp.json()
    except ValueError:
        data = {"status": resp.status_code, "body": resp.text[:500]}
    print(json.dumps(data, indent=2))
    return 0 if resp.status_code < 400 else 1


def _key_path(args: argparse.Namespace) -> str:
    return f"/admin/virtual-keys/{_segment(args.id)}"


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in ("name", "team", "user", "budget_usd", "budget_window", "rpm", "tpm", "expires_at"):
        v = getattr(args, field, None)
        if v is not None:
            out[field] = v
    if getattr(args, "models", None):
        out["models"] = args.models
    if getattr(args, "metadata", None):
        out["metadata"] = args.metadata
    return out


def _usd(text: str) -> float:
    """``--budget-usd``: a finite number >= 0 (``nan``/``inf`` cannot be sent as JSON)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r}: budget_usd must be a finite number >= 0")
    return value


def _finite(text: str) -> float:
    """A JSON number as a float; ValueError for one out of a float's range (``1e999``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _metadata(text: str) -> dict[str, Any]:
    """``--metadata``: a JSON object whose numbers are finite (JSON has no NaN or Infinity)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(text, parse_float=_finite, parse_constant=refuse)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"metadata: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("metadata: must be a JSON object")
    return value


def _rotate_master(args: argparse.Namespace) -> int:
    from .secrets import MASTER_KEY_ENV, Secrets, SecretsError

    try:
        n = Secrets(args.data_dir).rotate_master()
    except SecretsError as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    first = os.environ.get(MASTER_KEY_ENV, "").split(",")[0][:6]
    print(f"re-encrypted {n} secrets with the first key of {MASTER_KEY_ENV} ({first}...); "
          f"you can now drop the old key(s) from {MASTER_KEY_ENV}")  # fmt: skip
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="virtual keys (through the admin API) and the master key").add_subparsers(
        dest="action", required=True
    )

    def with_url(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--url", default=DEFAULT_URL, help="the running server (default %(default)s)")
        return p

    def with_settings(p: argparse.ArgumentParser, name_required: bool) -> None:
        p.add_argument("--name", required=name_required)
        p.add_argument("--team")
        p.add_argument("--user")
        p.add_argument("--models", nargs="+", help="routes this key may use (default: all)")
        p.add_argument("--budget-usd", type=_usd)
        p.add_argument("--budget-window", choices=["day", "week", "month"])
        p.add_argument("--rpm", type=int)
        p.add_argument("--tpm", type=int)
        p.add_argument("--expires-at", help="ISO 8601, e.g. 2026-12-31T00:00:00Z")
        p.add_argument("--metadata", type=_metadata, help="JSON object")

    c = with_url(keys.add_parser("create", help="issue a key (printed once)"))
    with_settings(c, True)
    c.set_defaults(func=lambda a: _call(a, "POST", "/admin/virtual-keys", _settings(a)))
    ls = with_url(keys.add_parser("list", help="keys, masked"))
    ls.add_argument("--team")
    ls.set_defaults(func=lambda a: _call(a, "GET", "/admin/virtual-keys", params={"team": a.team} if a.team else None))
    for action, method, help_ in (("show", "GET", "one key with its spend"), ("revoke", "POST", "revoke now"),
                                  ("rotate", "POST", "new secret, same id")):  # fmt: skip
        p = with_url(keys.add_parser(action, help=help_))
        p.add_argument("id")
        suffix = "" if action == "show" else f"/{action}"
        p.set_defaults(func=lambda a, m=method, s=suffix: _call(a, m, lambda a: f"{_key_path(a)}{s}"))
    u = with_url(keys.add_parser("update", help="change a key's settings"))
    u.add_argument("id")
    with_settings(u, False)
    u.set_defaults(func=lambda a: _call(a, "PATCH", _key_path, _settings(a)))
    nm = keys.add_parser("new-master", help="print a new Fernet master key")
    nm.set_defaults(func=lambda a: print(__import__("llmgw_kernel.keys.secrets", fromlist=["x"]).new_master_key()))
    rm = keys.add_parser("rotate-master", help="re-encrypt stored secrets with the first key of LLMGW_MASTER_KEY")
    rm.add_argument("--data-dir", type=Path, default=Path("llmgw-data"))
    rm.set_defaults(func=_rotate_master)

    creds = sub.add_parser("credentials", help="provider secrets, encrypted at rest").add_subparsers(
        dest="action", required=True
    )
    a = with_url(creds.add_parser("add", help="store a provider key (read from stdin or a prompt)"))
    a.add_argument("--name", required=True)
    a.add_argument("--provider", required=True)

    def _add(args: argparse.Namespace) -> int:
        secret = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("provider API key: ")
        return _call(
            args, "POST", "/admin/credentials", {"name": args.name, "provider": args.provider, "api_key": secret}
        )

    a.set_defaults(func=_add)
    cl = with_url(creds.add_parser("list", help="stored credentials, masked"))
    cl.set_defaults(func=lambda a: _call(a, "GET", "/admin/credentials"))
    cd = with_url(creds.add_parser("delete", help="forget a credential"))
    cd.add_argument("name")
    cd.set_defaults(
        func=lambda a: _call(a, "DELETE", lambda a: f"/admin/credentials/{_segment(a.name, 'credential name')}")
    )
