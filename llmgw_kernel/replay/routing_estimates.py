"""What a candidate routing would have cost, how fast and how reliable — estimated from the log.

Routing replay knows *which* targets a candidate tries for each logged request; what those
targets would have done is estimated from what each target did in the log:

- **per-target figures** from every logged attempt at that target (``attempts`` column;
  skipped/unavailable targets are not attempts): attempts, failure rate, latency of
  successful attempts (mean, p50, p95) and of failed ones (mean);
- **failure of a target** for one request = its per-attempt failure rate raised to the
  route's ``retry.attempts`` (independent failures assumed); the request falls back to the
  next target with that probability. ``fallback_rate`` is the mean probability that the
  first target fails; ``error_rate`` the mean probability that every target fails;
- **streams cut after their first byte** (an attempt logged ``... after first byte: ...``):
  the client already holds part of an answer, so no retry or fallback follows (docs/routing.md
  "Streams and fallbacks"). For a streamed request such a cut is an error of the request, with
  the target's per-attempt cut rate, on whichever try it comes; only the target's other
  failures are retried and fall back. A request that does not stream reads the whole answer
  before it sends a byte, so for it a cut is a failure like any other;
- **latency**: each request is simulated once along its plan, with draws hashed from the
  request id (deterministic), sampling the logged attempt latencies; p50/p95 are over those
  simulated requests, and ``latency_ms_mean`` is the exact expectation. Windows of more than
  :data:`SIMULATED_MAX` routed requests simulate a systematic sample of that many (every k-th
  routed request in window order, k = routed / SIMULATED_MAX, fractional steps rounded down),
  so the quantiles' cost stops growing with the window; smaller windows simulate every
  request. Upstream time only: gateway overhead (~1 ms) is left out;
- **cost** = logged prompt/completion tokens x the price of the target expected to serve
  (weighted by the probability that each target serves). Prices come from the candidate's
  ``pricing``; a target without a price makes ``cost_usd`` unknown (None) and is listed in
  ``unpriced_targets`` — never counted as 0. Token counts are the logged ones, i.e. as
  tokenised by the target that really served (another model may tokenise differently).

Targets the log has never attempted are listed in ``unmeasured_targets`` (treated as never
failing, with unknown latency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..decisions.cost import resolve_price
from ..decisions.routing import draws
from .columns import grouped

if TYPE_CHECKING:
    from ..policy.model import Policy

Columns = dict[str, Any]
#: routed requests simulated for the latency quantiles, at most (a systematic sample beyond)
SIMULATED_MAX = 100_000
# target id -> {"ok": latencies, "failed": latencies, "cut": latencies of the failed attempts cut after first byte}
Samples = dict[str, dict[str, np.ndarray]]
#: how the proxy marks an attempt that failed after the stream's first event reached the client
CUT_MARK = "after first byte"


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (pos - lo), 3)


def quantile(values: np.ndarray, q: float) -> float | None:
    """:func:`_quantile` of an array (the same interpolation), by partial sort."""
    n = len(values)
    if not n:
        return None
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi))
    return round(float(part[lo]) + (float(part[hi]) - float(part[lo])) * (pos - lo), 3)


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float | None]:
    """:func:`quantile` of each of ``qs``, with one partial sort (the same values)."""
    n = len(values)
    if not n:
        return [None] * len(qs)
    spots = [(int((n - 1) * q), (n - 1) * q) for q in qs]
    part = np.partition(values, sorted({k for lo, _ in spots for k in (lo, min(lo + 1, n - 1))}))
    out: list[float | None] = []
    for lo, pos in spots:
        a, b = float(part[lo]), float(part[min(lo + 1, n - 1)])
        out.append(round(a + (b - a) * (pos - lo), 3))
    return out


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _arrow(window: Any, name: str) -> pa.ChunkedArray | pa.Array:
    """A column as Arrow, from a :class:`~.window.Window` or a dict of lists."""
    if hasattr(window, "arrow") and name in window.columns:
        return window.arrow(name)
    return pa.array(window.get(name) or [None] * len(window["request_id"]))


def _numbers(window: Any, name: str) -> np.ndarray:
    """A numeric column as float64, NaN for NULL — a window's own array, not a copy (read it, do
    not change it): the estimates take NULL as 0 on the rows they read (1M rows: no 8 MB copy
    per column beside the window's)."""
    if hasattr(window, "numpy") and name in window.columns:
        return window.numpy(name)  # type: ignore[no-any-return]
    values = _arrow(window, name)
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def tokens(window: Any, name: str) -> tuple[np.ndarray, bool]:
    """A token column as float64 with NULL as 0 (a window's, computed once and shared: read it,
    do not change it), and whether every sum of its values is exact in float64 (whole numbers,
    an integer column, their total below 2**53): then it sums alike in any order."""

    def compute() -> tuple[np.ndarray, bool]:
        values = _numbers(window, name)
        zeroed = np.where(np.isnan(values), 0.0, values)  # NULL as 0 (a count is never infinite)
        whole = pa.types.is_integer(_arrow(window, name).type) or bool(np.array_equal(zeroed, np.rint(zeroed)))
        total = float(zeroed.sum()) if zeroed.size and zeroed.min() >= 0 else float(np.abs(zeroed).sum())
        return zeroed, whole and total < 2.0**53  # no |x| copy when no count is negative

    if hasattr(window, "memo"):
        return window.memo(f"tokens:{name}", compute)  # type: ignore[no-any-return]
    return compute()


def _codes(window: Any, name: str) -> tuple[np.ndarray, list[Any]]:
    """A string column as (an integer code per row, -1 for NULL; the distinct values) — a window's
    own codes (int32), not a copy."""
    if hasattr(window, "codes") and name in window.columns:
        return window.codes(name)  # type: ignore[no-any-return]
    col = _arrow(window, name)
    enc = (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).dictionary_encode()
    return pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def take_rows(column: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``column.take(rows)`` as one array, for ascending ``rows``: a chunked column is taken from
    chunk by chunk (Arrow's take from a chunked array of 63 chunks cost 0.04-0.05 CPU s for 100k
    request ids in a fresh process, the takes from the chunks that hold them 0.005-0.013)."""
    if not isinstance(column, pa.ChunkedArray):
        return column.take(pa.array(rows))
    if column.num_chunks == 1:
        return column.chunk(0).take(pa.array(rows))
    if len(rows) > 1 and not bool((rows[1:] >= rows[:-1]).all()):
        got = column.take(pa.array(rows))
        return got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got
    lengths = np.asarray([len(c) for c in column.chunks], np.int64)
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(rows, ends, side="left").tolist()
    parts, lo = [], 0
    for chunk, start, hi in zip(column.chunks, (ends - lengths).tolist(), cuts, strict=True):
        if hi > lo:
            parts.append(chunk.take(pa.array(rows[lo:hi] - start)))
        lo = hi
    return pa.concat_arrays(parts) if parts else pa.array([], column.type)


def attempt_arrays(window: Any) -> Samples:
    """target id -> {"ok": latencies of successful attempts, "failed": latencies of failed ones,
    "cut": those of the failed ones cut after a stream's first byte}, in log order
    (skipped/unavailable targets are not attempts; a NULL latency counts as 0).
    Computed once per :class:`~.window.Window` (shared: do not mutate)."""
    if hasattr(window, "memo"):
        return window.memo("attempt_arrays", lambda: _attempt_arrays(window))  # type: ignore[no-any-return]
    return _attempt_arrays(window)


def _attempt_arrays(window: Any) -> Samples:
    col = _arrow(window, "attempts")
    if pa.types.is_null(col.type) or not len(col):
        return {}
    flat = pc.list_flatten(col)
    if not len(flat):
        return {}
    error = pc.cast(pc.struct_field(flat, "error"), pa.string())  # all NULL: typed null when built from lists
    skipped = pc.fill_null(pc.starts_with(error, "skipped"), False)
    # the attempts' own arrays, not filtered copies, when none was skipped (the common case: a
    # filter copies every string; a million attempts' targets and errors are ~20 MB of fresh pages)
    keep = None if not pc.any(skipped).as_py() else pc.invert(skipped)
    kept = error if keep is None else error.filter(keep)
    ok = pc.is_null(kept).to_numpy(zero_copy_only=False)
    cut = np.zeros(len(ok), bool)
    failed = np.flatnonzero(~ok)  # a cut is a failure: only the failures' errors are read
    if failed.size:
        cut[failed] = pc.fill_null(pc.match_substring(kept.take(pa.array(failed)), CUT_MARK), False).to_numpy(
            zero_copy_only=False
        )
    latency = pc.struct_field(flat, "latency_ms")
    latency = pc.cast(latency if keep is None else latency.filter(keep), pa.float64())
    latency = latency.to_numpy(zero_copy_only=False)
    latency = np.nan_to_num(latency, nan=0.0, copy=not latency.flags.writeable)  # a copy already: in place
    targets = pc.cast(pc.struct_field(flat, "target"), pa.string())
    dictionary, indices = _encoded(targets if keep is None else targets.filter(keep))
    # each target's attempts, in log order (a NULL target: the last code, no target's)
    order, bounds = grouped(pc.fill_null(indices, len(dictionary)).to_numpy(zero_copy_only=False))
    latency, ok, cut = latency[order], ok[order], cut[order]
    out: Samples = {}
    for c, target in enumerate(dictionary.to_pylist()):
        at = slice(bounds[c], bounds[c + 1])
        lat, good = latency[at], ok[at]
        out[target] = {"ok": lat[good], "failed": lat[~good], "cut": lat[cut[at]]}
    return out


def _encoded(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """(the distinct values in order of first appearance, each value's index into them; NULL for
    NULL) — ``dictionary_encode`` of the values as one array, without concatenating a chunked
    column's strings first when its chunks come out sharing one dictionary (Arrow's hash kernel
    gives every chunk the final one)."""
    if isinstance(values, pa.ChunkedArray):
        enc = values.dictionary_encode()
        last = enc.chunk(enc.num_chunks - 1).dictionary if enc.num_chunks else None
        if last is not None and all(c.dictionary.equals(last) for c in enc.chunks):
            return last, pa.concat_arrays([c.indices for c in enc.chunks])
        values = values.combine_chunks()
    enc = values.dictionary_encode()
    return enc.dictionary, enc.indices


def attempt_samples(window: Any) -> dict[str, dict[str, list[float]]]:
    """:func:`attempt_arrays` as lists."""
    return {t: {k: v.tolist() for k, v in s.items()} for t, s in attempt_arrays(window).items()}


def _round_mean(values: np.ndarray) -> float | None:
    return round(float(values.sum()) / len(values), 3) if len(values) else None


def target_table(samples: Samples, policy: Policy) -> dict[str, dict[str, Any]]:
    """The per-target figures the estimates are made from."""
    table = {}
    for target, s in sorted(samples.items()):
        ok, failed = np.asarray(s["ok"], np.float64), np.asarray(s["failed"], np.float64)
        n = len(ok) + len(failed)
        price = resolve_price(policy, target)
        p50, p95 = quantiles(ok, (0.5, 0.95))
        table[target] = {
            "attempts": n,
            "failure_rate": round(len(failed) / n, 6) if n else None,
            "latency_ms_mean": _round_mean(ok),
            "latency_ms_p50": p50,
            "latency_ms_p95": p95,
            "failed_latency_ms_mean": _round_mean(failed),
            "input_per_1m": price.input_per_1m if price else None,
            "output_per_1m": price.output_per_1m if price else None,
            "price_source": price.source if price else "none",
        }
    return table


def _tries(policy: Policy, route: str | None) -> int:
    spec = policy.routes.get(route) if route else None
    retry = getattr(spec, "retry", None)
    return int(getattr(retry, "attempts", 1) or 1)


def estimate(policy: Policy, window: Any, plans: Any) -> dict[str, Any]:
    """The candidate's estimated cost, latency, error and fallback rates over the window
    (``plans``: one target list or None per request; equal plans may share one list)."""
    index: dict[tuple[str, ...], int] = {}
    codes = np.asarray([-1 if p is None else index.setdefault(tuple(p), len(index)) for p in plans], np.int32)
    return estimate_coded(policy, window, codes, list(index))


class _Tally:
    """What the requests of one (plan, route) group add to the estimates."""

    def __init__(self) -> None:
        self.cost = self.fallback = self.errors = 0.0
        self.unpriced: set[str] = set()
        self.unmeasured: set[str] = set()
        self.expected: list[tuple[float, int]] = []  # (expected latency, requests) of each known group


def estimate_coded(policy: Policy, window: Any, plan_codes: np.ndarray, plans: list[tuple[str, ...]]) -> dict[str, Any]:
    """:func:`estimate` of coded plans: request ``i`` tries ``plans[plan_codes[i]]`` (-1: not routed)."""
    samples = attempt_arrays(window)
    route_codes, route_values = _codes(window, "route")
    nonempty = np.asarray([bool(p) for p in plans] + [False], bool)
    unrouted = ~nonempty[plan_codes]
    routed_rows = np.flatnonzero(~unrouted)
    rids = _arrow(window, "request_id")
    # a group: one plan, one route, streamed or not (a stream cut after its first byte is terminal);
    # a log without cuts makes the groups, and every figure, those of plan and route alone. Every
    # row gets one (no gathers of the routed rows' columns): the unrouted rows the last, ``outside``
    cuts = any(len(s["cut"]) for s in samples.values())
    outside = 2 * len(plans) * (len(route_values) + 1)  # past every real group
    group = plan_codes.astype(np.int64)
    group *= len(route_values) + 1  # in place: no temporary per step
    group += route_codes
    group += 1
    group *= 2
    if cuts:
        group += _flags(window, "stream")
    group[unrouted] = outside
    tally = _Tally()
    at = routed_rows[simulated_positions(len(routed_rows))]  # the simulated rows
    sampled_ids = take_rows(rids, at)
    sizes = np.bincount(group, minlength=outside + 1)[:outside] if group.size else np.zeros(0, np.int64)
    tokens = _group_tokens(window, None, group, outside + 1)
    walks: dict[int, tuple[tuple[str, ...], int, bool]] = {}  # group -> (plan, tries, stream)
    known = np.zeros(len(sizes), bool)  # the groups whose latency is known
    for g in np.flatnonzero(sizes).tolist():  # np.unique's order, without a sort
        pr, stream = divmod(g, 2)
        plan, r = plans[pr // (len(route_values) + 1)], pr % (len(route_values) + 1) - 1
        walks[g] = (plan, _tries(policy, route_values[r] if r >= 0 else None), bool(stream))
        known[g] = _estimate_group(policy, samples, *walks[g], int(sizes[g]), tokens[g], tally)
    sampled_groups = group[at]
    sim = _simulate(samples, walks, sampled_groups, sampled_ids)
    routed = len(routed_rows)
    # each known group's expected latency once per request, in group order (the mean sums them so)
    expected = np.repeat(np.asarray([lat for lat, _ in tally.expected], np.float64),
                         np.asarray([n for _, n in tally.expected], np.int64))  # fmt: skip
    simulated_ms = sim[known[sampled_groups]]  # the quantiles' values: their order does not matter
    p50, p95 = quantiles(simulated_ms, (0.5, 0.95))
    return {
        "requests_estimated": routed,
        "cost_usd": None if tally.unpriced else round(tally.cost, 6),
        "cost_usd_priced_part": round(tally.cost, 6),
        "unpriced_targets": sorted(tally.unpriced),
        "error_rate": round(tally.errors / routed, 6) if routed else None,
        "fallback_rate": round(tally.fallback / routed, 6) if routed else None,
        "latency_ms_mean": _round_mean(expected),
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
        "unmeasured_targets": sorted(tally.unmeasured),
        "targets": target_table(samples, policy),
    }


def _flags(window: Any, name: str) -> np.ndarray:
    """A boolean column as a bool array (NULL: False)."""
    col = _arrow(window, name)
    if pa.types.is_null(col.type):
        return np.zeros(len(col), bool)
    return pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(bool)  # type: ignore[no-any-return]


def _outcomes(s: dict[str, np.ndarray] | None, tries: int, stream: bool) -> tuple[float, float]:
    """For one request at a target: (the probability that every try fails and it moves on, the
    probability that a stream is cut after its first byte: an error, no retry, no fallback).
    Without cuts the first is the failure rate raised to ``tries``, as before cuts were told apart."""
    if s is None:
        return 0.0, 0.0
    ok_n, failed_n = len(s["ok"]), len(s["failed"])
    cut_n = len(s["cut"]) if stream else 0
    if not cut_n:
        return (failed_n / (ok_n + failed_n)) ** tries, 0.0
    n = ok_n + failed_n
    retried = (failed_n - cut_n) / n  # a failure before the first byte: the next try, then the next target
    tried = tries if retried == 1.0 else (1 - retried**tries) / (1 - retried)  # expected tries made
    return retried**tries, cut_n / n * tried


def simulated_rows(routed_rows: np.ndarray) -> np.ndarray:
    """The routed requests whose latency is simulated: all of them up to :data:`SIMULATED_MAX`,
    else every k-th in window order (row ``floor(j * routed / SIMULATED_MAX)`` for each j)."""
    return routed_rows[simulated_positions(len(routed_rows))]  # type: ignore[no-any-return]


def simulated_positions(n: int) -> np.ndarray:
    """:func:`simulated_rows` of ``n`` routed requests, as positions among them."""
    if n <= SIMULATED_MAX:
        return np.arange(n, dtype=np.int64)
    return (np.arange(SIMULATED_MAX, dtype=np.int64) * n) // SIMULATED_MAX


def _group_tokens(
    window: Any, rows: np.ndarray | None, group: np.ndarray, groups: int
) -> list[tuple[float, float, bool]]:
    """Per group (``group``: the group of each of ``rows``; None: of every row): its summed prompt
    and completion tokens (NULL: 0) and whether any of its requests logged a non-zero count
    (:func:`_sums_by`)."""
    (pt, p_whole), (ct, c_whole) = tokens(window, "prompt_tokens"), tokens(window, "completion_tokens")
    if rows is not None and len(rows) != len(pt):  # ascending rows: as many as the window's are all of them
        pt, ct = pt[rows], ct[rows]
    sums = _sums_by(group, groups, (pt, ct), p_whole and c_whole)
    logged = np.bincount(group[(pt != 0) | (ct != 0)], minlength=groups).tolist()  # rows with a count logged
    return [(p, c, s > 0) for p, c, s in zip(sums[0], sums[1], logged, strict=True)]


def _estimate_group(
    policy: Policy, samples: Samples, plan: tuple[str, ...], tries: int, stream: bool, n: int,
    tokens: tuple[float, float, bool], tally: _Tally,
) -> bool:  # fmt: skip
    """The ``n`` requests of a group, which share a plan, a route and ``stream`` (their summed
    prompt and completion tokens, and whether any logged one: ``tokens``), walked along their plan together:
    the expectation is the same for each (the simulation draws per request: :func:`_simulate`).
    Whether their latency is known: it is unknown when a target a request can reach
    (every earlier one fails with probability > 0) and be served by (its failure probability
    < 1) has no logged successful attempt — the same for every request of the group."""
    sum_pt, sum_ct, has_tokens = tokens
    reach, lat = 1.0, 0.0
    known = True
    can_reach = True  # every earlier target fails with probability > 0
    for k, target in enumerate(plan):
        s = samples.get(target)
        if s is None:
            tally.unmeasured.add(target)
        ok_n, failed_n = (len(s["ok"]), len(s["failed"])) if s is not None else (0, 0)
        p, cut = _outcomes(s, tries, stream)
        if k == 0:
            tally.fallback += p * n
        tally.errors += reach * cut * n
        serve = reach * (1 - p - cut)
        if serve > 0 and has_tokens:
            price = resolve_price(policy, target)
            if price is None:
                tally.unpriced.add(target)
            else:
                tally.cost += serve * (sum_pt * price.input_per_1m + sum_ct * price.output_per_1m) / 1e6
        ok_ms = float(s["ok"].sum()) / ok_n if s is not None and ok_n else None
        failed_ms = float(s["failed"].sum()) / failed_n if s is not None and failed_n else 0.0
        if ok_ms is None and (serve > 0 or (can_reach and p < 1)):
            known = False
        lat += serve * (ok_ms or 0.0) + reach * p * tries * failed_ms + reach * cut * failed_ms
        can_reach = can_reach and p > 0
        reach *= p
    tally.errors += reach * n
    if known:
        tally.expected.append((lat, n))
    return known


#: the pools a simulated try draws its latency from, by its outcome: failed (every try), cut, served
_POOLS = ("failed", "cut", "ok")


def _simulate(samples: Samples, walks: dict[int, tuple[tuple[str, ...], int, bool]], groups: np.ndarray,
              ids: pa.Array) -> np.ndarray:  # fmt: skip
    """Each simulated request's latency (``groups``: its group, ``walks[group]`` = (plan, tries,
    stream); ``ids``: its request id), walked along its plan: at target ``k`` it fails with the
    group's probability ``p`` and goes on, is cut after the first byte with probability ``cut``
    and stops, else is served and stops, adding a logged latency drawn from that pool (a failure's
    times ``tries``). Its draws hash ``f"{request id}:{k}"`` ("sim-fail": the outcome, drawn only
    when it is uncertain; "sim-lat": the pick). All groups' requests step together, one target
    position at a time (Arrow strings: no Python object per request); each request's draws and
    sums are those of a walk of its group alone."""
    sim = np.zeros(len(groups), np.float64)
    going = np.ones(len(groups), bool)  # not served yet
    size = int(groups.max()) + 1 if len(groups) else 0
    depth = max((len(w[0]) for w in walks.values()), default=0)
    targets = sorted({t for w in walks.values() for t in w[0]})
    tries = np.ones(size, np.int64)
    for g, (_, t, _) in walks.items():
        tries[g] = t
    # per target and outcome (target * 3 + outcome, _POOLS' order): the pool, or None if empty
    pools = [(samples[t][name] if t in samples and len(samples[t][name]) else None) for t in targets for name in _POOLS]
    drawn = np.asarray([pool is not None for pool in pools] + [False], bool)  # its latency is drawn
    for k in range(depth):
        p, cut, at_target = np.zeros(size), np.zeros(size), np.full(size, -1, np.int64)
        for g, (plan, t, stream) in walks.items():
            if k < len(plan):
                p[g], cut[g] = _outcomes(samples.get(plan[k]), t, stream)
                at_target[g] = targets.index(plan[k])
        target = at_target[groups]
        rows = np.flatnonzero(going & (target >= 0))
        if not rows.size:
            continue
        g_rows, target = groups[rows], target[rows]
        pk, ck = p[g_rows], cut[g_rows]
        keys = pc.binary_join_element_wise(ids.take(pa.array(rows)), str(k), ":")
        uncertain = (ck > 0) | ((pk > 0) & (pk < 1))  # else the outcome is certain: no draw
        u = np.full(len(rows), np.nan)
        u[uncertain] = draws("sim-fail", keys if uncertain.all() else keys.filter(pa.array(uncertain)))
        fails = np.where(uncertain, u < pk, pk >= 1)
        cuts = (ck > 0) & (u >= pk) & (u < pk + ck)
        pool = target * 3 + np.where(fails, 0, np.where(cuts, 1, 2))
        pool[~drawn[pool]] = len(pools)  # no latency to draw: the last code, no pool's
        lat = np.flatnonzero(pool < len(pools))
        if lat.size:
            u_lat = draws("sim-lat", keys if lat.size == len(rows) else keys.take(pa.array(lat)))
            order, bounds = grouped(pool[lat])
            for c in np.flatnonzero(np.diff(bounds[: len(pools) + 1])).tolist():
                mine = order[bounds[c] : bounds[c + 1]]  # positions in lat, ascending
                values = pools[c]
                assert values is not None
                pick = (u_lat[mine] * len(values)).astype(np.int64)
                times = tries[g_rows[lat[mine]]] if c % 3 == 0 else 1
                sim[rows[lat[mine]]] += values[pick] * times
        going[rows[~fails]] = False
    return sim


def logged_cost(policy: Policy, window: Any) -> dict[str, Any]:
    """What the logged traffic cost at the candidate's prices (the baseline to compare with)."""
    codes, values = _codes(window, "target")
    (pt, p_whole), (ct, c_whole) = tokens(window, "prompt_tokens"), tokens(window, "completion_tokens")
    cost, unpriced = 0.0, set()
    if p_whole and c_whole:  # every row by its target code + 1 (0: none): no gathers; a 0 adds nothing
        shifted = codes + 1
        sums = _sums_by(shifted, len(values) + 1, (pt, ct), True)
        sums[2] = np.bincount(shifted[(pt != 0) | (ct != 0)], minlength=len(values) + 1).tolist()
        sums = [column[1:] for column in sums]
    else:
        rows = np.flatnonzero(((pt != 0) | (ct != 0)) & (codes >= 0))  # tokens logged (NULL: 0)
        sums = _sums_by(codes[rows], len(values), (pt[rows], ct[rows]), False)
    for c, target in enumerate(values):
        if not target or not sums[2][c]:
            continue
        price = resolve_price(policy, target)
        if price is None:
            unpriced.add(target)
            continue
        cost += (sums[0][c] * price.input_per_1m + sums[1][c] * price.output_per_1m) / 1e6
    return {"cost_usd": None if unpriced else round(cost, 6), "unpriced_targets": sorted(unpriced)}


def _sums_by(codes: np.ndarray, n: int, columns: tuple[np.ndarray, ...], whole: bool) -> list[list[Any]]:
    """Per code ``0..n-1`` the sum of each of ``columns`` (float64, no NaN) over its rows, then
    the count of its rows. ``whole`` (every sum exact: :func:`tokens`): summed in one pass
    (:func:`numpy.bincount`, equal to any other order); else code by code, as
    ``values[codes == c].sum()`` adds them."""
    if whole:
        sums = [np.bincount(codes, weights=v, minlength=n).tolist() for v in columns]
    else:
        order, bounds = grouped(codes) if codes.size else (codes, np.zeros(1, np.int64))
        sums = [[float(v[order[bounds[c] : bounds[c + 1]]].sum()) if c + 1 < len(bounds) else 0.0
                 for c in range(n)] for v in columns]  # fmt: skip
    return [*sums, np.bincount(codes, minlength=n).tolist()]
