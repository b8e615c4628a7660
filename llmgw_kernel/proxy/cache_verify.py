"""The upstream call that checks a sampled semantic hit (docs/cache.md#a-false-hit-bound-max_false_hit_rate).

The cached answer has already been sent; this asks the route's targets the same question (not
streamed, through the same attempt loop: retries, timeouts, breakers) in a background task
and hands the fresh answer to the cache, which compares it on its worker thread. The client
never waits for it. The call is the gateway's own spend: it is not a request row and no key's
budget pays for it; the cache caps it per route and hour (``verify_max_usd_per_hour``) and
journals each outcome with the time it became known.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..decisions.cost import cost_usd
from ..log.record import RequestRecord
from .attempts import attempt
from .errors import GatewayError

if TYPE_CHECKING:
    from ..cache.core import Query
    from .runtime import Gateway, Snapshot

log = logging.getLogger("llmgw.cache")

_RUNNING: set[asyncio.Task[None]] = set()  # strong references until each check is done


def start_check(gw: Gateway, snap: Snapshot, rec: RequestRecord, body: dict[str, Any], q: Query) -> None:
    """Ask upstream in the background what the hit ``rec`` answered from the cache."""
    task = asyncio.get_running_loop().create_task(_check(gw, snap, rec, body, q))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


async def _check(gw: Gateway, snap: Snapshot, rec: RequestRecord, body: dict[str, Any], q: Query) -> None:
    probe = RequestRecord(rec.request_id, time.time(), "chat.completions", rec.api)
    probe.route, probe.plan = rec.route, rec.plan
    plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    try:
        reply = await attempt(gw, snap, probe, plain, lambda a, t, b: a.chat(b, t))
    except (GatewayError, OSError) as exc:
        log.info("%s: checking the cached answer failed: %s", rec.request_id, exc)
        return
    usage = reply.usage if isinstance(reply.usage, dict) else {}
    cost = cost_usd(snap.policy, probe.target, usage.get("prompt_tokens"), usage.get("completion_tokens"))
    gw.cache.checked(q, rec.request_id, reply.body, cost)
