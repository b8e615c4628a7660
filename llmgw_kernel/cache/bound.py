"""Learned semantic thresholds under a user's false-hit bound (docs/cache.md#a-false-hit-bound-max_false_hit_rate).

A :class:`Bound` holds the verified outcomes of one region (a route and embedding model):
how often a cached answer was the same as the model's fresh answer, by the similarity of the
request to that entry. Its :meth:`Bound.threshold` is the lowest similarity ``t`` at which
the evidence says, at 95% confidence, that at most ``delta`` of the answers served at ``s >=
t`` are wrong: the one-sided Clopper-Pearson upper bound of the wrong share among outcomes
at ``s >= t`` is within ``delta``. Candidate thresholds are tested from the top down and the
scan stops at the first that fails (fixed-sequence testing); thresholds with too few outcomes
above them for any result to pass are skipped — which those are depends on the similarities
only, not on the outcomes. Per entry: an entry once seen to answer differently at similarity
``s`` never answers a request below ``s + ENTRY_MARGIN``. A repeat (:data:`IDENTICAL`) is
served like an exact hit and is no evidence about paraphrases.

Pure and deterministic: the same outcomes in the same order give the same thresholds, live
and in replay.

>>> b = Bound()
>>> b.threshold(0.01)          # no evidence: only repeats are served
0.99999
>>> for i in range(400):
...     b.add(Outcome(float(i), "r", "m", f"e{i}", f"q{i}", 0.97, True, "shadow"))
>>> b.threshold(0.01)
0.97
>>> b.add(Outcome(400.0, "r", "m", "e7", "q400", 0.98, False, "shadow"))
>>> b.threshold(0.01), b.floor("e7")   # 1 wrong in 401: not yet evidence of <= 1%
(0.99999, 0.99)
"""

from __future__ import annotations

import math
from typing import NamedTuple

#: similarity bins of this width: thresholds are multiples of it
STEP = 0.005
_BINS = int(round(1 / STEP)) + 1
#: confidence of the upper bound on the false-hit rate
CONFIDENCE = 0.95
#: an entry that answered differently at ``s`` serves only from ``s`` + this
ENTRY_MARGIN = 0.01
#: an entry's floor when it may never answer again
NEVER = 1.01
#: a repeat, not a paraphrase: the same text in the same context (an identical text's cosine is 1
#: within float32 rounding). Served like an exact hit whatever the evidence, and not evidence
#: about paraphrases (repeats would swamp the bins near 1 and hide the paraphrases' errors)
IDENTICAL = 0.99999
#: entries whose wrong answers are remembered, per region (the oldest are forgotten first)
MAX_FLOORS = 100_000

# effective defaults of the options that are None in the policy
DEFAULT_VERIFY_RATE = 0.05
DEFAULT_VERIFY_MAX_USD_PER_HOUR = 1.0
DEFAULT_EQUIVALENCE = "normalised"
DEFAULT_ANSWER_THRESHOLD = 0.9


class Outcome(NamedTuple):
    """One verified comparison: did entry ``source``'s answer equal the model's answer to
    request ``request``, at similarity ``similarity``? ``by``: shadow (a miss compared with its
    nearest entry), sampled (a served hit also asked upstream) or feedback (a user said so)."""

    known_at: float  # epoch seconds when the outcome became known (learning order)
    route: str
    model: str
    source: str
    request: str
    similarity: float
    same: bool
    by: str

    def to_json(self) -> dict[str, object]:
        return dict(self._asdict())

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Outcome:
        return cls(
            float(d["known_at"]), str(d["route"]), str(d["model"]), str(d["source"]), str(d["request"]),  # type: ignore[arg-type]
            float(d["similarity"]), bool(d["same"]), str(d["by"]),  # type: ignore[arg-type]
        )  # fmt: skip


class Totals(NamedTuple):
    """What a :class:`Bound` keeps of a region's outcomes (its sufficient statistics): the
    outcomes and wrong answers per similarity bin (only the bins with any, as ``(bin, n,
    wrong)``), the served hits' outcomes, and the entries' floors in the order a bound evicts
    them. Bounded whatever the number of outcomes: :data:`_BINS` bins, :data:`MAX_FLOORS` floors."""

    bins: tuple[tuple[int, int, int], ...]
    served_n: int
    served_wrong: int
    floors: tuple[tuple[str, float], ...]


class Folded(Outcome):
    """Every outcome of one region known up to ``known_at``, folded into their :class:`Totals`
    (a compacted journal's head, :mod:`.outcomes`): learned as one, it leaves a :class:`Bound`
    as those outcomes learned one by one would have (``Bound.add``). An ``Outcome`` so that it
    travels where outcomes do (``Caches.learn``, ``Caches.attach_outcomes``) in time order."""

    totals: Totals

    @classmethod
    def of(cls, known_at: float, route: str, model: str, totals: Totals) -> Folded:
        folded = cls(known_at, route, model, "", "", 0.0, True, "folded")
        folded.totals = totals
        return folded


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (k is small where it matters)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(min(k, n) + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
    return min(total, 1.0)


def within(wrong: int, n: int, delta: float, confidence: float = CONFIDENCE) -> bool:
    """Whether the one-sided Clopper-Pearson upper bound of ``wrong / n`` is at most ``delta``
    (equivalently: ``wrong`` or fewer errors would be unlikely, ``1 - confidence``, were the
    true rate ``delta``)."""
    return n > 0 and binom_cdf(wrong, n, delta) <= 1 - confidence


def min_outcomes(delta: float, confidence: float = CONFIDENCE) -> int:
    """The fewest outcomes with which any result (none wrong) can pass :func:`within`."""
    return math.ceil(math.log(1 - confidence) / math.log1p(-delta))


def wilson(wrong: int, n: int, z: float = 1.96) -> tuple[float | None, float | None, float | None]:
    """The wrong share and its Wilson score interval (95% by default); Nones without data."""
    if n <= 0:
        return None, None, None
    p = wrong / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def bin_of(similarity: float) -> int:
    """The bin of a similarity: bin ``i`` holds ``[i * STEP, (i + 1) * STEP)``."""
    return min(max(int(math.floor(similarity / STEP + 1e-9)), 0), _BINS - 1)


def floor_after(o: Outcome) -> float | None:
    """The floor an outcome sets for its entry ``o.source`` (None: none — the answers matched):
    an entry that answered differently at ``s`` serves only from ``s`` + :data:`ENTRY_MARGIN`."""
    return None if o.same else min(o.similarity + ENTRY_MARGIN, NEVER)


class Bound:
    """The outcomes of one region and the thresholds they allow (see the module doc)."""

    __slots__ = ("n", "wrong", "floors", "served_n", "served_wrong", "_cache")

    def __init__(self) -> None:
        self.n = [0] * _BINS  # outcomes per similarity bin
        self.wrong = [0] * _BINS  # of which the answers differed
        self.floors: dict[str, float] = {}  # entry request id -> lowest similarity it may serve at
        self.served_n = self.served_wrong = 0  # outcomes of served hits (sampled, feedback)
        self._cache: dict[float, float] = {}  # delta -> threshold, until the next outcome

    def add(self, o: Outcome) -> None:
        """Learn one outcome (a :class:`Folded` one: all the outcomes it folds)."""
        if isinstance(o, Folded):
            self._merge(o.totals)
            return
        if o.by != "shadow":
            self.served_n += 1
            self.served_wrong += not o.same
        if o.similarity < IDENTICAL:
            b = bin_of(o.similarity)
            self.n[b] += 1
            self.wrong[b] += not o.same
        floor = floor_after(o)
        if floor is not None:
            self._raise_floor(o.source, floor)
        self._cache.clear()

    def _raise_floor(self, source: str, floor: float) -> None:
        """Entry ``source`` serves from ``floor`` on, if that is higher than before; a raised floor
        is the most recent (the oldest is forgotten past :data:`MAX_FLOORS`)."""
        if floor > self.floors.get(source, 0.0):
            self.floors.pop(source, None)
            self.floors[source] = floor
            if len(self.floors) > MAX_FLOORS:
                self.floors.pop(next(iter(self.floors)))

    def _merge(self, t: Totals) -> None:
        for b, n, wrong in t.bins:
            self.n[b] += n
            self.wrong[b] += wrong
        self.served_n += t.served_n
        self.served_wrong += t.served_wrong
        for source, floor in t.floors:
            self._raise_floor(source, floor)
        self._cache.clear()

    def totals(self) -> Totals:
        """This bound's sufficient statistics (what a :class:`Folded` outcome carries)."""
        bins = tuple((b, n, self.wrong[b]) for b, n in enumerate(self.n) if n)
        return Totals(bins, self.served_n, self.served_wrong, tuple(self.floors.items()))

    def floor(self, source: str) -> float:
        """The lowest similarity at which entry ``source`` may answer (0: no evidence against it)."""
        return self.floors.get(source, 0.0)

    def threshold(self, delta: float, confidence: float = CONFIDENCE) -> float:
        """The lowest similarity at which a hit is served (:data:`IDENTICAL`: repeats only, so far)."""
        found = self._cache.get(delta)
        if found is None:
            found = self._cache[delta] = self._scan(delta, confidence)
        return found

    def peek(self, delta: float) -> float:
        """The threshold, computed without touching the memo (safe from another thread than the
        one that learns and decides: a report must never leave a stale threshold behind)."""
        return self._scan(delta, CONFIDENCE)

    def _scan(self, delta: float, confidence: float) -> float:
        need = min_outcomes(delta, confidence)
        best, n, wrong = IDENTICAL, 0, 0
        for b in range(_BINS - 1, -1, -1):
            n += self.n[b]
            wrong += self.wrong[b]
            if not self.n[b] or n < need:
                continue  # nothing new to test here, or too few outcomes for any result to pass
            if not within(wrong, n, delta, confidence):
                break
            best = round(b * STEP, 6)
        return best

    def estimate(self) -> dict[str, float | int | None]:
        """The false-hit rate of served hits, from the verified ones (sampled and feedback),
        with its 95% Wilson interval."""
        rate, low, high = wilson(self.served_wrong, self.served_n)
        return {"verified_hits": self.served_n, "false": self.served_wrong, "rate": rate, "low": low, "high": high}
