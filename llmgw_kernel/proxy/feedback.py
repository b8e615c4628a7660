"""``POST /v1/llmgw/feedback``: a user's verdict on a semantic hit (docs/cache.md#using-it).

Body ``{"request_id": "<x-request-id of the hit>", "correct": true | false}``. The hit must be
a recent semantic hit on a route under ``max_false_hit_rate``, made with the same key (or, in
open mode, the same credential): anyone else's id is a 404, so a client can neither learn
which ids exist nor poison another tenant's thresholds. The verdict is an outcome like a
checked hit's: it feeds the route's learned threshold and its false-hit estimate, and is
journaled. 202 ``{"request_id": ..., "recorded": true}``; a malformed body is a 400. A hit
takes one verdict, the first: a later one (the same or the other) is a 409 ``already_recorded``
and counts nothing, so one client cannot steer the estimate by repeating itself; a client that
retries after a lost 202 can read that 409 as "on record".
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from ..cache.learning import VerdictRecorded
from ..cache.service import key_id
from ..keys.store import VirtualKey
from .asgi import Receive, Scope, Send, read_body, send_error, send_json
from .credentials import presented_key
from .errors import GatewayError, bad_request
from .runtime import Gateway

Caller = Callable[[Gateway, Scope], VirtualKey | None]
_MAX_BYTES = 4096


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
    try:
        key = caller(gw, scope)
        who = key.id if key is not None else key_id(presented_key(scope["headers"]))
        request_id, correct = _parse(await read_body(receive, _MAX_BYTES, None))
        try:
            known = gw.cache.feedback(request_id, correct, who)
        except VerdictRecorded as first:
            raise GatewayError(
                409, f"A verdict on {request_id!r} is already recorded (correct: {str(first.correct).lower()}); "
                "a hit takes one verdict, the first", "invalid_request_error", code="already_recorded",
                param="request_id",
            ) from None  # fmt: skip
        if not known:
            raise GatewayError(
                404, f"No recent semantic cache hit {request_id!r} of yours under max_false_hit_rate",
                "invalid_request_error", code="unknown_request_id", param="request_id",
            )  # fmt: skip
    except GatewayError as err:
        await send_error(send, err)
        return
    await send_json(send, 202, orjson.dumps({"request_id": request_id, "recorded": True}))


def _parse(raw: bytes) -> tuple[str, bool]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request('the body must be JSON: {"request_id": ..., "correct": true|false}') from None
    if not isinstance(body, dict) or set(body) - {"request_id", "correct"}:
        raise bad_request("the body takes request_id and correct only")
    rid, correct = body.get("request_id"), body.get("correct")
    if not isinstance(rid, str) or not rid or len(rid) > 200:
        raise bad_request("request_id must be the hit's x-request-id", param="request_id")
    if not isinstance(correct, bool):
        raise bad_request("correct must be true or false", param="correct")
    return rid, correct
