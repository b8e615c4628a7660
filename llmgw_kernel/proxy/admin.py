"""The admin API: virtual keys and provider credentials (docs/keys.md).

Every route requires ``Authorization: Bearer $LLMGW_ADMIN_TOKEN``; without a configured
token the admin API is disabled (403 on every route), never open. Writes go to disk on a
worker thread (fsync), so the proxy keeps serving meanwhile. Nothing secret is ever logged
or echoed: a new or rotated key is returned once in the response body, and that is all.

    POST   /admin/virtual-keys                 {"name", "team"?, "user"?, "models"?, "budget_usd"?,
                                                 "budget_window"?, "rpm"?, "tpm"?, "expires_at"?, "metadata"?}
    GET    /admin/virtual-keys[?team=T]        masked
    GET    /admin/virtual-keys/{id}            masked, with spend against its budgets
    PATCH  /admin/virtual-keys/{id}            any of the fields above
    POST   /admin/virtual-keys/{id}/revoke
    POST   /admin/virtual-keys/{id}/rotate     a new key for the same id; the old one stops at once
    POST   /admin/credentials                  {"name", "provider", "api_key"}  (needs LLMGW_MASTER_KEY)
    GET    /admin/credentials                  masked
    DELETE /admin/credentials/{name}
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from typing import Any

import orjson

from ..keys.secrets import SecretsError
from ..keys.store import settings_from
from .asgi import Receive, Scope, Send, read_body, send_error, send_json
from .errors import GatewayError, not_found_path
from .runtime import Gateway
from .validate import load_json

log = logging.getLogger("llmgw.admin")

# any one segment is a key id to look up (a 404 key_not_found names it), not an unknown path
_KEY_PATH = re.compile(r"^/admin/virtual-keys/([^/]+)(?:/(revoke|rotate))?$")
_CRED_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_CRED_PATH = re.compile(r"^/admin/credentials/([^/]+)$")
_MAX_BODY = 64 * 1024


def _token_ok(gw: Gateway, scope: Scope) -> None:
    expected = gw.admin_token
    if not expected:
        raise GatewayError(
            403, "The admin API is disabled: set LLMGW_ADMIN_TOKEN to enable it", "permission_error",
            code="admin_disabled",
        )  # fmt: skip
    presented = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                presented = token.strip()
    if not hmac.compare_digest(presented, expected.encode()):
        raise GatewayError(
            401, "Admin routes need Authorization: Bearer <LLMGW_ADMIN_TOKEN>", code="invalid_admin_token"
        )


async def _json(receive: Receive, scope: Scope) -> dict[str, Any]:
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    raw = await read_body(receive, _MAX_BODY, length)
    body = load_json(raw or b"{}")  # the proxy's parser: not JSON, or nested too deep, is a 400 naming where
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object", code="invalid_json")
    return body


def _invalid(exc: ValueError) -> GatewayError:
    message = str(exc)
    field = message.split(":", 1)[0] if ":" in message and " " not in message.split(":", 1)[0] else None
    return GatewayError(400, message, param=field, code="invalid_field")


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        _token_ok(gw, scope)
        status, body = await _route(gw, scope, receive)
        await send_json(send, status, orjson.dumps(body))
    except GatewayError as err:
        if err.status >= 500:
            log.error("admin %s %s -> %d %s", scope["method"], scope["path"], err.status, err.message)
        else:
            log.info("admin %s %s -> %d %s", scope["method"], scope["path"], err.status, err.code)
        await send_error(send, err)
    except OSError as exc:  # the data directory refused the write (a full disk): nothing was changed
        log.error("admin %s %s -> 503 storage_unavailable: %s", scope["method"], scope["path"], exc)
        message = f"The gateway could not write its data directory ({exc.strerror or exc}); nothing was changed"
        await send_error(send, GatewayError(503, message, "server_error", code="storage_unavailable"))
    except Exception:
        log.exception("admin %s %s failed", scope["method"], scope["path"])
        await send_error(send, GatewayError(500, "Internal gateway error", "server_error", code="internal_error"))


async def _route(gw: Gateway, scope: Scope, receive: Receive) -> tuple[int, Any]:
    method, path = scope["method"], scope["path"].rstrip("/")
    keys = gw.keys
    if path == "/admin/virtual-keys":
        if method == "POST":
            body = await _json(receive, scope)
            try:
                settings = settings_from(body)
            except ValueError as exc:
                raise _invalid(exc) from None
            created, plain = await asyncio.to_thread(keys.create, settings)
            log.info("admin: created virtual key %s (%s, team %s)", created.id, settings.name, settings.team)
            return 201, {**created.public(), "key": plain}
        if method == "GET":
            team = _query(scope).get("team")
            now = time.time()
            every = await asyncio.to_thread(keys.snapshot)  # writers add keys meanwhile, on worker threads
            items = [k.public(now) for k in every if team is None or k.settings.team == team]
            return 200, {"object": "list", "data": items}
        raise _method(method, path)
    m = _KEY_PATH.match(path)
    if m:
        key_id, action = m.groups()
        record = keys.keys.get(key_id)
        if record is None:
            raise GatewayError(404, f"No virtual key {key_id!r}", code="key_not_found")
        if action is None and method == "GET":
            return 200, {**record.public(), "spend": await gw.key_spend_now(record)}
        if action is None and method == "PATCH":
            body = await _json(receive, scope)
            try:
                settings = settings_from(body, record.settings)
            except ValueError as exc:
                raise _invalid(exc) from None
            updated = await asyncio.to_thread(keys.update, key_id, settings)
            log.info("admin: updated virtual key %s (version %d)", key_id, updated.version)
            return 200, updated.public()
        if action == "revoke" and method == "POST":
            revoked = await asyncio.to_thread(keys.revoke, key_id)
            log.info("admin: revoked virtual key %s", key_id)
            return 200, revoked.public()
        if action == "rotate" and method == "POST":
            if record.state(time.time()) == "revoked":
                raise GatewayError(409, f"Virtual key {key_id} is revoked; create a new one", code="key_revoked")
            rotated, plain = await asyncio.to_thread(keys.rotate, key_id)
            log.info("admin: rotated virtual key %s", key_id)
            return 200, {**rotated.public(), "key": plain}
        raise _method(method, path)
    return await _credentials(gw, scope, receive)


async def _credentials(gw: Gateway, scope: Scope, receive: Receive) -> tuple[int, Any]:
    """``/admin/credentials`` (add, list) and ``/admin/credentials/<name>`` (delete)."""
    method, path = scope["method"], scope["path"].rstrip("/")
    if path == "/admin/credentials":
        if method == "POST":
            body = await _json(receive, scope)
            name, provider, api_key = body.get("name"), body.get("provider"), body.get("api_key")
            for field, value in (("name", name), ("provider", provider), ("api_key", api_key)):
                if not isinstance(value, str) or not value.strip():
                    message = f"{field}: a non-empty string is required"
                    raise GatewayError(400, message, param=field, code="invalid_field")
            assert isinstance(name, str) and isinstance(provider, str) and isinstance(api_key, str)
            if not _CRED_NAME.match(name):
                raise GatewayError(400, "name: letters, digits and _.:- only (at most 100)", param="name")
            try:
                described = await asyncio.to_thread(gw.secrets.put_credential, name, provider, api_key.strip())
            except SecretsError as exc:
                raise GatewayError(400, str(exc), code="master_key_missing") from None
            gw.refresh_snapshot()
            log.info("admin: stored credential %s for provider %s", name, provider)
            return 201, described
        if method == "GET":
            return 200, {"object": "list", "data": [gw.secrets.describe(n) for n in gw.secrets.names()]}
        raise _method(method, path)
    m = _CRED_PATH.match(path)
    if m:
        if method != "DELETE":
            raise _method(method, path)
        if not _CRED_NAME.match(m.group(1)) or not await asyncio.to_thread(gw.secrets.delete_credential, m.group(1)):
            raise GatewayError(404, f"No credential {m.group(1)!r}", code="credential_not_found")
        gw.refresh_snapshot()
        log.info("admin: deleted credential %s", m.group(1))
        return 200, {"name": m.group(1), "deleted": True}
    raise not_found_path(path)


def _method(method: str, path: str) -> GatewayError:
    return GatewayError(405, f"Method {method} is not allowed on {path}", code="method_not_allowed")


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
