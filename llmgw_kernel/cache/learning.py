"""Live learning for the false-hit bound (docs/cache.md#a-false-hit-bound-max_false_hit_rate):
which requests are checked, the checks themselves, and user feedback.

- a **miss** under the bound whose nearest entry passed verification is compared with that
  entry once its fresh answer is stored (``shadow``: no extra upstream call);
- a deterministic ``verify_rate`` share of **semantic hits** (a hash of the request id) is also
  asked upstream after the cached answer was served (``sampled``; the proxy makes the call,
  :mod:`llmgw_kernel.proxy.cache_verify`), within ``verify_max_usd_per_hour`` per route;
- **feedback** (``POST /v1/llmgw/feedback``) on a recent semantic hit is an outcome too (one
  per hit: the first verdict stands).

Every comparison and every learning step runs on the cache worker (the one thread that owns
the semantic stores and the learned thresholds), in the order they were submitted; the event
loop only stamps the time and submits. Outcomes are journaled (:mod:`.outcomes`: bounded, compacted
on the worker as it grows).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .bound import (
    DEFAULT_EQUIVALENCE,
    DEFAULT_VERIFY_MAX_USD_PER_HOUR,
    DEFAULT_VERIFY_RATE,
    Outcome,
)
from .core import Caches, Nearest, Query
from .equivalence import answers_match
from .outcomes import OUTCOMES_FILE, OutcomeJournal

if TYPE_CHECKING:
    from ..policy.model import SemanticCacheSettings
    from .embedder import Embedder

log = logging.getLogger("llmgw.cache")

#: semantic hits remembered for feedback (the most recent; ~150 bytes each)
MAX_SERVED = 100_000
SPEND_WINDOW_S = 3600.0
#: a hit's ``cache_verify`` mark: sampled and checked upstream beside the answer
SAMPLED = "sampled"
#: a hit's ``cache_verify`` mark: sampled (the hash of its id is below ``verify_rate``) but not
#: checked, because the route's checks had spent ``verify_max_usd_per_hour`` within the hour
SKIPPED_CAP = "skipped_cap"


class Served(NamedTuple):
    """A semantic hit, as feedback on it needs it (no vector, no answer: only ids)."""

    route: str
    model: str
    source: str  # the request id whose answer was served
    similarity: float
    key_id: str | None
    verdict: bool | None = None  # the feedback recorded on it (a hit takes one, the first)


class VerdictRecorded(Exception):
    """Feedback on a hit that already has a verdict (the first stands; the API answers 409)."""

    def __init__(self, request_id: str, correct: bool) -> None:
        super().__init__(request_id, correct)
        self.request_id, self.correct = request_id, correct


def sampled(request_id: str, rate: float) -> bool:
    """Whether a hit is checked: a hash of its id below ``rate`` (deterministic, replayable)."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64 < rate


def _ignore(route: str) -> None:
    pass


class Learning:
    """The live side of the bound for one gateway (owned by ``CacheService``)."""

    def __init__(
        self, caches: Caches, pool: ThreadPoolExecutor, data_dir: Path, embedder: Callable[[str | None], Embedder]
    ) -> None:
        self.caches = caches
        self.pool = pool
        self.journal = OutcomeJournal(Path(data_dir) / OUTCOMES_FILE)
        self.embedder = embedder
        self.served: OrderedDict[str, Served] = OrderedDict()
        self.spend: dict[str, deque[tuple[float, float]]] = {}  # route -> (time, cost) of checks
        self.checks = self.skipped_by_cap = 0
        #: told the route of each sampled hit not checked because of the spend cap (the proxy
        #: counts it in /metrics: ``proxy/cache_verify.count_skipped_checks``)
        self.on_skipped: Callable[[str], None] = _ignore

    def restore(self) -> int:
        """Learn the journal's outcomes again (on the worker, at start), read line by line, then
        compact the journal if it has outgrown its bound (a journal written before the bound)."""
        n = 0
        for o in self.journal.load():
            self.caches.learn(o)
            n += 1
        if self.journal.lines > self.journal.compact_at:
            try:
                self.journal.compact()
            except OSError as exc:
                log.warning("cannot compact the cache outcome journal: %s", exc)
        return n

    # -- the request path (event loop) --------------------------------------------------------

    def hit(self, q: Query, request_id: str, key_id: str | None) -> str | None:
        """Remember a semantic hit under the bound (for feedback); the hit's check mark for its
        log row (``cache_verify``): :data:`SAMPLED` if it is to be checked, :data:`SKIPPED_CAP`
        if it was sampled but the route's hourly spend cap is spent, None if not sampled."""
        sem = q.settings.semantic
        if sem is None or sem.max_false_hit_rate is None or q.nearest is None:
            return None
        assert q.model is not None
        self.served[request_id] = Served(q.route, q.model, q.nearest.entry.request_id, q.nearest.similarity, key_id)
        if len(self.served) > MAX_SERVED:
            self.served.popitem(last=False)
        if not sampled(request_id, DEFAULT_VERIFY_RATE if sem.verify_rate is None else sem.verify_rate):
            return None
        cap = DEFAULT_VERIFY_MAX_USD_PER_HOUR if sem.verify_max_usd_per_hour is None else sem.verify_max_usd_per_hour
        if self._spent(q.route, time.time()) >= cap:
            self.skipped_by_cap += 1
            self.on_skipped(q.route)
            return SKIPPED_CAP
        self.checks += 1
        return SAMPLED

    def _spent(self, route: str, now: float) -> float:
        spent = self.spend.setdefault(route, deque())
        while spent and spent[0][0] < now - SPEND_WINDOW_S:
            spent.popleft()
        return sum(c for _, c in spent)

    def compare_later(self, q: Query, near: Nearest, fresh: Any, request_id: str, by: str, cost: float | None) -> None:
        """Compare ``fresh`` (bytes or a lazily assembled stream) with the nearest entry's answer
        on the worker, then learn and journal the outcome. Stamped now: learning order."""
        now = time.time()
        if by == "sampled" and cost:
            self.spend.setdefault(q.route, deque()).append((now, cost))
        self.pool.submit(self._compare, q, near, fresh, request_id, by, now)

    def feedback(self, request_id: str, correct: bool, key_id: str | None) -> bool:
        """Learn a user's verdict on one of their recent semantic hits (False: not known). A hit
        takes one verdict, the first: a later one raises :class:`VerdictRecorded` and is not
        learned (repeating a verdict must not multiply its weight in the estimate). Called on
        the event loop only, so the check and the mark are one step."""
        served = self.served.get(request_id)
        if served is None or served.key_id != key_id:
            return False
        if served.verdict is not None:
            raise VerdictRecorded(request_id, served.verdict)
        self.served[request_id] = served._replace(verdict=correct)
        outcome = Outcome(
            time.time(), served.route, served.model, served.source, request_id, served.similarity, correct, "feedback"
        )
        self.pool.submit(self._learn, outcome)
        return True

    # -- the cache worker ---------------------------------------------------------------------

    def _compare(self, q: Query, near: Nearest, fresh: Any, request_id: str, by: str, known_at: float) -> None:
        sem = q.settings.semantic
        cached = near.entry.body
        if sem is None or cached is None or q.model is None:
            return  # the entry was purged meanwhile: nothing to compare with
        try:
            same = self._same(sem, bytes(cached), bytes(fresh))
        except Exception:  # a comparison must never take the worker down
            log.exception("comparing answers for %s failed", request_id)
            return
        self._learn(Outcome(known_at, q.route, q.model, near.entry.request_id, request_id, near.similarity, same, by))

    def _same(self, sem: SemanticCacheSettings, cached: bytes, fresh: bytes) -> bool:
        encode = self.embedder(sem.model).encode if (sem.equivalence or DEFAULT_EQUIVALENCE) == "embedding" else None
        return answers_match(sem, cached, fresh, encode)

    def _learn(self, outcome: Outcome) -> None:
        self.caches.learn(outcome)
        try:
            self.journal.append(outcome)
        except OSError as exc:
            log.warning("cannot journal a cache outcome: %s", exc)

    def report(self, policy_bounds: dict[tuple[str, str], float]) -> dict[str, Any]:
        """Per region under a bound: its learned threshold and the verified false-hit estimate."""
        out: dict[str, Any] = {}
        for (route, model), delta in policy_bounds.items():
            b = self.caches.bounds.get((route, model))
            if b is None:
                out[f"{route} ({model})"] = {"max_false_hit_rate": delta, "threshold": None, "outcomes": 0}
                continue
            out[f"{route} ({model})"] = {
                "max_false_hit_rate": delta, "threshold": b.peek(delta), "outcomes": sum(b.n),
                "false_hits": b.estimate(),
            }  # fmt: skip
        return out | {"checks_started": self.checks, "checks_skipped_by_spend_cap": self.skipped_by_cap}
