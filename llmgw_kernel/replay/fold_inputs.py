"""The composed fold's inputs as integer-coded arrays, read from the window's columns, for the
compiled kernel (:mod:`.fold_kernel`).

Everything :meth:`.fold.Composer.run` reads per request is stateless given the request, so it
is computed here once, column by column (Arrow/numpy), with no Python object per row: a rule
the Python fold applies per request (:func:`~llmgw_kernel.decisions.cost.cost_usd`,
:func:`~llmgw_kernel.decisions.limits.worst_case_usd`, the cache's namespace and scoped key,
:meth:`.costs.CostModel.expected`, the applicable limits) is called once per *distinct* value
of what it reads, and its answer is spread back to the rows by code. What the arrays hold:

- **budget and commit buckets**: a bucket is (scope, who, window, window start). A *series*
  is (scope, who, window); bucket ``b = series_off[s] + widx[k, row]`` where ``widx`` is the
  index of the calendar window (``k``: day/week/month, in the state's time zone) holding the
  row's decision time — the windows :meth:`Limits.bounds` returns, enumerated once;
- **limit groups**: requests with the same (subject, key version) answer to the same budgets,
  rate limits and commit scopes; each group's lists are flattened (CSR: ``*_ptr``, entries);
- **rate windows**: one code per (scope, who), as :func:`rate_buckets_of` keys them;
- **exact cache**: one code per (route, scoped key), one store per route, the TTL and size bound
  of the settings that read or store (:mod:`.fold_cache_inputs`; the column coding both use is
  :mod:`.fold_codes`);
- **per request**: decision, lookup and settlement times, the reservation, what serving it
  upstream costs (:meth:`Composer.served`), what it stores on a miss and when.

Anything the kernel does not fold (a semantic setting it does not implement, several policy versions, a start state
with requests in flight, a calendar with gaps) makes :func:`inputs` return None. The Python
fold (:meth:`.fold.Composer.run` over per-row objects) is the reference: the kernel's results
equal it field by field (tests/replay/test_fold_kernel.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from ..decisions.cost import cost_usd
from ..decisions.limits import (
    NANO,
    Budget,
    Limits,
    Rate,
    Subject,
    _who,
    applicable_budgets,
    applicable_rates,
    rate_buckets_of,
    window_bounds,
    worst_case_usd,
)
from ..log.record import CHECK_ENDPOINT
from .costs_columnar import ExpectedCosts, cost_usd_columns
from .fold_cache_inputs import cache_arrays
from .fold_codes import ROWS_MAX, Codes, Cols, factorize, ran_live
from .fold_semantic import supported
from .stateless import source_rows
from .window import Window, as_window, release_memory, split_plan

if TYPE_CHECKING:
    from datetime import datetime

    from .fold import Composer

log = logging.getLogger("llmgw.replay")

WINDOWS = ("day", "week", "month")
_NONE_I = -1
#: the log columns the inputs read (one scan)
FOLD_COLUMNS = (
    "request_id", "ts", "ts_end", "admitted_ts", "settled_ts", "route", "key_id", "team", "end_user", "key_version",
    "prompt_tokens", "completion_tokens", "cost_usd", "cached_tokens", "reserved_tokens", "reserved_prompt_tokens",
    "reserved_usd", "admission", "plan", "outcome", "cache", "attempts", "target", "latency_ms", "cache_lookup_ts",
    "cache_stored_ts", "cache_key", "cache_control", "cache_ns_header", "metadata", "temperature", "endpoint",
    "cache_source", "request_body",
)  # fmt: skip
#: columns the inputs read when the window has them (read in the same scan, not compacted)
_FOLD_OPTIONAL = ("cache_reason",)
#: the scans the fold's columns are read in (:func:`_scan`): fewer hold more at once, more read
#: the request ids again (each scan matches its rows to the window's by them)
SCANS = 3
#: the numeric columns no step after the order reads (the times are in its arrays: freed before the limit groups)
_READ_BEFORE_GROUPS = ("ts", "ts_end", "admitted_ts", "settled_ts", "cache_lookup_ts", "cache_stored_ts",
                       "temperature")  # fmt: skip
#: the numeric columns no step after the admission facts reads (freed before the serving facts)
_READ_BEFORE_SERVED = ("reserved_tokens", "reserved_prompt_tokens", "reserved_usd", "key_version")
#: the numeric columns nothing reads after the serving facts' logged usage
_READ_BEFORE_ESTIMATES = ("prompt_tokens", "completion_tokens", "cost_usd", "cached_tokens", "latency_ms")
#: the columns the inputs (and their decoding) read as Arrow, not as codes or numbers: not compacted
_READ_AS_ARROW = frozenset({"request_id", "cache_source", "target", "attempts"})
#: the columns of warm rows (answers cached before the window) the cache's arrays read
_WARM_COLUMNS = ("request_id", "ts", "ts_end", "route", "key_id", "metadata", "cache_ns_header", "cache_key",
                 "cache_control", "temperature", "outcome", "cache", "cache_stored_ts", "endpoint", "target",
                 "prompt_tokens", "completion_tokens")  # fmt: skip


@dataclass
class Groups:
    """The limits of each (subject, key version), flattened."""

    budgets: list[list[tuple[int, Budget]]] = field(default_factory=list)  # (series, budget)
    commits: list[list[int]] = field(default_factory=list)  # series spend is counted in
    rates: list[list[tuple[int, Rate]]] = field(default_factory=list)  # (rate window, rate)
    rate_windows: list[list[int]] = field(default_factory=list)  # windows an admission counts in


@dataclass
class Decoding:
    """What turning the kernel's output into a ``Folded`` reads besides it (all rows: the
    window's, then the warm rows')."""

    rids: pa.ChunkedArray  # request id of every row
    targets: pa.ChunkedArray  # the target that served every row (its answer's, for a cache source)
    bypass: tuple[np.ndarray, list[str]]  # why a window row bypasses the cache: code into the reasons (-1: not)
    read: np.ndarray  # bool: a window row may read the cache (no ``no-cache`` header)
    unknown_model: np.ndarray  # bool: routed, with an empty plan (a request, not a check)
    unrouted_check: np.ndarray  # bool: a check of a semantic hit, with an empty plan (never spent)
    warm_cost: Callable[[int], float | None]  # what a warm row's answer costs at the candidate's prices
    unpriced: list[set[str]]  # targets each distinct upstream estimate found unpriced
    unpriced_of: np.ndarray  # int32 per window row: its estimate's index into ``unpriced`` (-1: none)


@dataclass
class Inputs:
    """What the kernel reads (arrays) and what turning its output into a ``Folded`` needs."""

    arrays: dict[str, np.ndarray]
    groups: Groups
    budget_flat: list[Budget]
    rate_flat: list[Rate]
    window_ends: list[list[datetime]]  # per window kind: the end of each enumerated window
    decoding: Decoding
    order: np.ndarray  # rows admitted in this order (routed, with a plan)


def _opt(v: float) -> int | None:
    """A logged integer read as float64 (NaN for NULL) as the Python value the log holds."""
    return None if v != v else int(v)


#: the largest nano-dollar amount the kernel holds (int64): a dollar figure beyond it is not folded
NANO_MAX = 2**63 - 1024  # the largest float64 below 2**63 (its int64 cast is exact)


def nano_of(usd: np.ndarray) -> np.ndarray:
    """:func:`~llmgw_kernel.decisions.limits.nano` by array: ``round(usd * NANO)`` (half to even, as
    Python's ``round``). An amount int64 cannot hold (over ~$9.2 billion) raises
    :class:`Unsupported` (the Python fold counts it in Python ints), not a wrapped value."""
    fits_nano(usd)
    scaled = usd * NANO
    np.rint(scaled, out=scaled)  # in place: one float64 temporary (a 1M-row fold's peak is at its last call)
    return scaled.astype(np.int64)


def fits_nano(usd: np.ndarray) -> None:
    """Raise :class:`Unsupported` unless every ``round(usd * NANO)`` is an int64 (the kernel
    rounds :data:`C` ``up_cost`` to nano-dollars itself: checked here, for every row)."""
    if len(usd) and not (float(usd.min()) * NANO >= -NANO_MAX and float(usd.max()) * NANO <= NANO_MAX):
        raise Unsupported(f"a cost beyond int64 nano-dollars ({float(usd.min())!r}..{float(usd.max())!r} USD)")


def tokens_of(tokens: np.ndarray) -> np.ndarray:
    """Token counts (float64, whole numbers) as int32, the kernel's input; one beyond int32 (over
    2.1 billion tokens in a request) raises :class:`Unsupported` (the Python fold runs), never a
    wrapped value — not an int64 fallback: the kernel compiled for a second signature costs ~100
    CPU s once (numba caches one signature per input types)."""
    lo, hi = (float(tokens.min()), float(tokens.max())) if len(tokens) else (0.0, 0.0)
    if lo >= -(2.0**31) and hi < 2.0**31:
        return tokens.astype(np.int32)
    raise Unsupported(f"a token count beyond int32 ({lo!r}..{hi!r})")


# -- the inputs ----------------------------------------------------------------------------------


def inputs(c: Composer) -> Inputs | None:
    """The kernel's inputs for ``c`` (None: the kernel does not fold this replay).

    The columns only the inputs read (those the window did not hold before) are released once
    the inputs are made, with their codes: the kernel and the stages after it read arrays, and a
    later reader of such a column scans it again (the window's memory stays what the stages need)."""
    rows = c.n + (len(c.warm_window) if c.warm_window is not None else 0)
    if len(c.policies) > 1 or c.start.flights or rows > ROWS_MAX:
        return None
    window = as_window(c.window)
    held = set(window.table.column_names)
    coded = window.coded
    try:
        made = _inputs(c, window, held)
    except Unsupported as e:
        log.info("the compiled fold does not fold this replay (%s): the Python fold runs", e)
        made = None
    if made is not None:  # and their codes: ~50 MB of int32 arrays and Python strings at the fold's peak
        window.release([n for n in window.columns if n not in held and n not in coded], codes=True)
    return made


def _inputs(c: Composer, window: Window, held: set[str]) -> Inputs | None:
    pol = c.policies[0]
    if not set(FOLD_COLUMNS) <= set(window.columns):  # a window given as a few columns: the Python fold
        return None
    warm = as_window(c.warm_window) if c.warm_window is not None and len(c.warm_window) else None
    if warm is not None:
        warm.prefetch(_WARM_COLUMNS)
    cols = Cols(window, warm)
    route_codes, route_values = cols.codes("route", both=True)
    settings = [pol.cache_for(r) for r in route_values]
    if not supported(settings):  # a semantic setting the kernel does not implement
        return None
    _scan(cols, held)
    plan_code, plans, logged_code = plan_codes(c, window)
    n = c.n
    a: dict[str, np.ndarray] = {}
    # first, while few arrays are held: the cache's keys and teams stream bodies and metadata (transient memory)
    bypass, read = cache_arrays(c, cols, plan_code >= 0, settings, route_codes, route_values, a)
    cols.drop_warm()
    release_memory()  # the cache's temporaries (~120 MB at 1M rows): under the order's and groups' (the peak)
    nonempty = np.array([bool(p) for p in plans] + [False], np.bool_)
    order = _order(cols, np.flatnonzero(nonempty[plan_code]), a)
    cols.drop(_READ_BEFORE_GROUPS)  # ~40 MB at 1M rows, under the groups, admission and serving facts
    # a step's freed temporaries stay resident until trimmed when they reused freed heap (a second
    # replay in a process: its heap is the first's, trimmed): each step's trimmed before the next's
    release_memory()
    series, windows = Codes(), Codes()
    groups, gid = _groups(c, cols, order, series, windows)
    release_memory()
    cal = _calendar(c.start.timezone, a["decide"][order], order, n, a)
    if cal is None:
        return None
    _limit_arrays(groups, series, windows, a)
    _seed(c.start, series, windows, cal[0], a)
    release_memory()  # the cache's, order's and groups' temporaries: freed, but held by malloc until trimmed
    _admission(c, cols, order, gid, groups, plan_code, plans, a)
    cols.drop(_READ_BEFORE_SERVED)
    release_memory()
    unpriced, unpriced_of = _served(c, cols, order, plan_code, plans, logged_code, a)
    release_memory()  # the serving facts' temporaries (~50 MB at 1M rows): under the decoding's columns
    check = _checks(cols, a)
    a["n"] = np.array([n], np.int64)

    targets = cols.arrow("target", both=True)
    tokens = (cols.arrow("prompt_tokens", both=True), cols.arrow("completion_tokens", both=True))

    def warm_cost(i: int) -> float | None:  # holds these columns, not ``cols`` (its arrays are freed with it)
        target, pt, ct = (col[i].as_py() for col in (targets, *tokens))
        return cost_usd(c.policy, target, pt, ct)

    empty = (plan_code >= 0) & ~nonempty[plan_code]
    decoding = Decoding(cols.arrow("request_id", both=True), targets, bypass, read, empty & ~check, empty & check,
                        warm_cost, unpriced, unpriced_of)  # fmt: skip
    return Inputs(a, groups, [b for g in groups.budgets for _, b in g], [r for g in groups.rates for _, r in g],
                  cal[1], decoding, order)  # fmt: skip


def _scan(cols: Cols, held: set[str]) -> None:
    """Read the fold's columns the window does not hold, in :data:`SCANS` scans, each batch
    compacted (:meth:`.fold_codes.Cols.compact`) before the next is read: one scan of them all
    held every column's Arrow form (and, through the segment cache, its file's pages) beside the
    window at once — the replay's peak (a 1M-row window: ~950 MB, ~350 MB above the window)."""
    window = cols.w
    names = [n for n in (*FOLD_COLUMNS, *_FOLD_OPTIONAL) if n in window.columns]
    for k in range(SCANS):
        batch = names[k * len(names) // SCANS : (k + 1) * len(names) // SCANS]
        window.prefetch(batch)
        own = [n for n in batch if n not in held and n in window.table.column_names and n in FOLD_COLUMNS]
        cols.compact([n for n in own if n not in _READ_AS_ARROW])


def _checks(cols: Cols, a: dict[str, np.ndarray]) -> np.ndarray:
    """The window rows that are checks of a sampled semantic hit (``a["check"]``), and the window
    row of each one's hit (``a["check_src"]``, -1: not in the window)."""
    check = cols.eq("endpoint", CHECK_ENDPOINT)
    src = np.full(cols.n, -1, np.int32)
    rows = np.flatnonzero(check)
    if len(rows):
        src[rows] = source_rows(cols.w, cols.arrow("cache_source").take(pa.array(rows, pa.int64())))
    a["check"], a["check_src"] = check, src
    return check  # type: ignore[no-any-return]


def plan_codes(c: Composer, window: Window) -> tuple[np.ndarray, list[tuple[str, ...]], np.ndarray]:
    """(the replayed plan of every row as an int32 code into the returned plans, -1: not routed; the
    plans; the logged plan coded into the same table, -1: none). From the routing stage's codes
    when the composer's plans came from it, else coded here."""
    attached = window.get("_routing") if "_routing" in window else None
    if isinstance(attached, tuple) and attached[1] is c.plans:
        d = attached[0]
        # the routing stage's own int32 arrays, not int64 copies (read, never written)
        return d.plan_codes.astype(np.int32, copy=False), list(d.plans), d.logged_codes.astype(np.int32, copy=False)
    index: dict[tuple[str, ...], int] = {}
    codes = np.fromiter(
        (-1 if p is None else index.setdefault(tuple(p), len(index)) for p in c.plans), np.int32, c.n
    )  # fmt: skip
    lc, lv = window.codes("plan")
    table = np.array([index.setdefault(tuple(split_plan(v) or ()), len(index)) for v in lv] + [-1], np.int32)
    return codes, list(index), table[lc]


def _order(cols: Cols, rows: np.ndarray, a: dict[str, np.ndarray]) -> np.ndarray:
    """The admitted rows in decision order: by (decision time, request id), as ``Composer.order``
    (a stable sort: equal keys keep window order). Sets ``a["decide"]`` and the times."""
    ts = cols.num("ts")
    admitted = cols.num("admitted_ts")
    decide_at = np.where(np.isnan(admitted), ts, admitted)
    settled, end = cols.num("settled_ts"), cols.num("ts_end")
    a["decide"] = decide_at
    a["settle_logged"] = np.where(np.isnan(settled), np.where(np.isnan(end), ts, end), settled)
    looked = cols.num("cache_lookup_ts")
    a["lookup"] = np.where(np.isnan(looked), decide_at, np.fmax(looked, decide_at))
    order = rows[np.argsort(decide_at[rows], kind="stable")]
    d = decide_at[order]
    ties = np.flatnonzero(d[1:] == d[:-1])
    k = 0
    while k < len(ties):  # runs of equal decision times (rare): by request id, stably
        lo = hi = int(ties[k])
        while k < len(ties) and ties[k] == hi:
            hi, k = hi + 1, k + 1
        run = order[lo : hi + 1]
        rids = cols.values("request_id", run)
        order[lo : hi + 1] = run[sorted(range(len(run)), key=rids.__getitem__)]
    return order.astype(np.int32)  # rows are int32 (ROWS_MAX)


def _groups(c: Composer, cols: Cols, order: np.ndarray, series: Codes, windows: Codes) -> tuple[Groups, np.ndarray]:
    """The limit group of every admitted row (window rows; 0 for the others).

    The fold memoises the limits per (subject, key version); they read the subject only through
    ``_who(scope, subject)`` for the scopes the policy's limits and counted spend name, and the
    key's own limits through its version. So rows that agree on those parts share a group
    (usually far fewer than distinct subjects: end users rarely have budgets of their own)."""
    pol = c.policies[0]
    counted = sorted(c.counted)
    scopes = {s for s, _ in counted} | {b.scope for b in (pol.budgets.limits if pol.budgets else ())}
    scopes |= {r.scope for r in pol.rate_limits}
    column = {"key": "key_id", "team": "team", "user": "end_user", "route": "route"}
    parts = [column[s] for s in sorted(scopes - {"global"})]
    if c.history is not None:
        parts += ["key_id", "key_version"]
    coded = [cols.codes(p)[0][order] if p != "key_version" else cols.num(p)[order] for p in parts]
    code, first = (
        factorize(*coded) if coded else (np.zeros(len(order), np.int64), np.zeros(min(len(order), 1), np.int64))
    )
    reps = order[first]
    key_id, team, user, route, kv = (cols.values(k, reps) for k in ("key_id", "team", "end_user", "route",
                                                                   "key_version"))  # fmt: skip
    g = Groups()
    for j in range(len(reps)):
        subject = Subject(key_id[j], team[j], user[j], route[j] or "")
        key = c.key_settings(key_id[j], kv[j])
        budgets, rates = applicable_budgets(pol, key, subject), applicable_rates(pol, key, subject)
        g.budgets.append([(series.code((b.limit.scope, b.who, b.limit.window)), b) for b in budgets])
        g.rates.append([(windows.code((r.limit.scope, r.who)), r) for r in rates])
        g.rate_windows.append([windows.code(rb) for rb in rate_buckets_of(rates)])
        whos = [(s, w, _who(s, subject)) for s, w in counted]
        g.commits.append([series.code((s, who, w)) for s, w, who in whos if s == "global" or who is not None])
    gid = np.zeros(c.n, np.int32)
    gid[order] = code
    return g, gid


def _calendar(
    tz: str, at: np.ndarray, order: np.ndarray, n: int, a: dict[str, np.ndarray]
) -> tuple[list[list[float]], list[list[datetime]]] | None:
    """Index of the day/week/month window holding each row's decision time, and the windows'
    starts and ends (None when a decision time falls outside the enumerated calendar)."""
    widx = np.zeros((3, n), np.int32)
    starts_all: list[list[float]] = []
    ends_all: list[list[datetime]] = []
    for k, w in enumerate(WINDOWS):
        starts: list[float] = []
        ends_f: list[float] = []
        ends: list[datetime] = []
        if len(order):
            t, last = float(np.nanmin(at)), float(np.nanmax(at))
            while True:
                s, e = window_bounds(t, w, tz)
                starts.append(s.timestamp())
                ends_f.append(e.timestamp())
                ends.append(e)
                if ends_f[-1] > last:
                    break
                t = ends_f[-1]
            pos = np.searchsorted(np.array(starts), at, side="right") - 1
            if (pos < 0).any() or (at >= np.array(ends_f)[pos]).any():
                return None
            widx[k, order] = pos
        starts_all.append(starts)
        ends_all.append(ends)
    a["widx"] = widx
    return starts_all, ends_all


def _limit_arrays(g: Groups, series: Codes, windows: Codes, a: dict[str, np.ndarray]) -> None:
    """The groups' lists as CSR arrays, and each series' first bucket."""
    flat = [(s, b.limit.usd, b.limit.mode == "hard") for lst in g.budgets for s, b in lst]
    a["gb_ptr"] = _ptr([len(x) for x in g.budgets])
    a["gb_series"] = np.array([s for s, _, _ in flat], np.int64)
    a["gb_usd"] = nano_of(np.array([u for _, u, _ in flat], np.float64))  # nano-dollars, as Limits compares
    a["gb_hard"] = np.array([h for _, _, h in flat], np.bool_)
    a["gc_ptr"] = _ptr([len(x) for x in g.commits])
    a["gc_series"] = np.array([s for x in g.commits for s in x], np.int64)
    rates = [(w, r.limit.rpm, r.limit.tpm) for lst in g.rates for w, r in lst]
    a["gr_ptr"] = _ptr([len(x) for x in g.rates])
    a["gr_win"] = np.array([w for w, _, _ in rates], np.int64)
    a["gr_rpm"] = np.array([_NONE_I if p is None else p for _, p, _ in rates], np.int64)
    a["gr_tpm"] = np.array([_NONE_I if t is None else t for _, _, t in rates], np.int64)
    a["gw_ptr"] = _ptr([len(x) for x in g.rate_windows])
    a["gw_win"] = np.array([w for x in g.rate_windows for w in x], np.int64)
    a["series_kind"] = np.array([WINDOWS.index(key[2]) for key in series], np.int64)
    a["n_windows"] = np.array([max(len(windows), 1)], np.int64)


def _ptr(lengths: list[int]) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _seed(start: Limits, series: Codes, windows: Codes, starts: list[list[float]], a: dict[str, np.ndarray]) -> None:
    """The start state's spend, reservations and rate windows, in the kernel's layout."""
    sizes = np.array([len(starts[k]) for k in a["series_kind"]], np.int64)
    off = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=off[1:])
    a["series_off"] = off
    committed, reserved = np.zeros(int(off[-1]), np.int64), np.zeros(int(off[-1]), np.int64)  # nano-dollars
    at_start = [{s: j for j, s in enumerate(ks)} for ks in starts]
    for state, dst in ((start.committed, committed), (start.reserved, reserved)):
        for (scope, who, w, st), v in state.items():
            s = series.get((scope, who, w))
            j = at_start[WINDOWS.index(w)].get(st) if s is not None else None
            if s is not None and j is not None:
                dst[off[s] + j] = v
    a["committed"], a["reserved"] = committed, reserved
    m = int(a["n_windows"][0])
    cap = 64
    rw = {
        "rw_sec": np.zeros((m, cap), np.int64),
        "rw_req": np.zeros((m, cap), np.int64),
        "rw_tok": np.zeros((m, cap), np.int64),
        "rw_head": np.zeros(m, np.int64),
        "rw_len": np.zeros(m, np.int64),
        "rw_requests": np.zeros(m, np.int64),
        "rw_tokens": np.zeros(m, np.int64),
        "rw_reserved": np.zeros(m, np.int64),
    }
    for key, w in start.windows.items():
        code = windows.get(key)
        if code is None:
            continue
        for j, (sec, nreq, ntok) in enumerate(list(w.buckets)[-cap:]):
            rw["rw_sec"][code, j], rw["rw_req"][code, j], rw["rw_tok"][code, j] = sec, nreq, ntok
        rw["rw_len"][code] = min(len(w.buckets), cap)
        rw["rw_requests"][code], rw["rw_tokens"][code], rw["rw_reserved"][code] = w.requests, w.tokens, w.reserved
        if len(w.buckets) > cap:
            raise Unsupported
    a.update(rw)


class Unsupported(Exception):
    """What the kernel cannot hold: a start state's rate window of more than 64 buckets, an
    amount or a token count beyond its integers (:func:`inputs` then returns None)."""


# -- per request ---------------------------------------------------------------------------------


def _admission(
    c: Composer, cols: Cols, order: np.ndarray, gid: np.ndarray, g: Groups, plan_code: np.ndarray,
    plans: list[tuple[str, ...]], a: dict[str, np.ndarray],
) -> None:  # fmt: skip
    """Each admitted row's group, request id, tokens reserved and worst case (``Composer.worst_usd``)."""
    n = c.n
    rtok_raw, bound = cols.num("reserved_tokens"), cols.num("reserved_prompt_tokens")
    a["group"] = gid
    a["rid"] = cols.ids("request_id")
    # no reservation logged: its tokens (NULL read as 0) — taken at those rows only, no row-sized copies
    rtok = np.nan_to_num(rtok_raw)
    unreserved = np.flatnonzero(np.isnan(rtok_raw))
    pt, ct = cols.num("prompt_tokens")[unreserved], cols.num("completion_tokens")[unreserved]
    rtok[unreserved] = (np.nan_to_num(pt) + np.nan_to_num(ct)).astype(np.int64)
    a["rtok"] = tokens_of(rtok)
    del rtok
    has_budgets = np.array([bool(b) for b in g.budgets] + [False], np.bool_)[gid]
    priced = ~np.isnan(bound) & ~np.isnan(rtok_raw) & (np.nan_to_num(rtok_raw) != 0)
    worst = np.zeros(n, np.int64)
    mine = np.zeros(n, np.bool_)
    mine[order] = True
    logged = np.flatnonzero(mine & has_budgets & ~priced)
    usd = cols.num("reserved_usd")[logged]  # else what it cost, as logged (NULL: 0)
    usd = np.where(np.isnan(usd), np.nan_to_num(cols.num("cost_usd")[logged]), usd)
    worst[logged] = nano_of(usd)
    rows = np.flatnonzero(mine & has_budgets & priced)
    if len(rows):
        cub = rtok_raw[rows] - bound[rows]
        code, first = factorize(plan_code[rows], bound[rows], cub)
        pol = c.policies[0]
        usd = np.array([worst_case_usd(pol, plans[int(plan_code[rows[j]])], int(bound[rows[j]]), int(cub[j]))
                        for j in first.tolist()], np.float64)  # fmt: skip
        worst[rows] = nano_of(usd)[code]
    a["worst"] = worst


def _served(
    c: Composer, cols: Cols, order: np.ndarray, plan_code: np.ndarray, plans: list[tuple[str, ...]],
    logged_code: np.ndarray, a: dict[str, np.ndarray],
) -> tuple[list[set[str]], np.ndarray]:  # fmt: skip
    """(cost, tokens, settle time) of serving each admitted row upstream (``Composer.served``), by
    column; returns the targets each distinct estimate found unpriced, and each row's estimate."""
    n = c.n
    pol = c.policies[0]
    mine = np.zeros(n, np.bool_)
    mine[order] = True
    # gathered before NaN is read as 0: no row-sized copy of a column (the fold's peak is here)
    pt_raw, ct_raw = cols.num("prompt_tokens"), cols.num("completion_tokens")
    has_tokens = ~np.isnan(pt_raw) | ~np.isnan(ct_raw)
    ran = ran_live(cols)
    live_hit = cols.eq("cache", "hit") | cols.eq("cache", "semantic-hit")
    ran_upstream = ran & ~live_hit
    same = mine & ran_upstream & (plan_code == logged_code)
    target_code, targets = cols.codes("target")
    up_cost, up_has = np.zeros(n), np.zeros(n, np.bool_)
    up_tok = np.zeros(n)  # whole numbers as float64 until narrowed (tokens_of)
    up_at = np.full(n, np.nan)
    # the same plan, ran live: its logged tokens at the candidate's price of the target that served
    failed = same & (target_code < 0)  # failed upstream live: it costs what it cost then
    up_cost[failed], up_has[failed] = np.nan_to_num(cols.num("cost_usd")[failed]), True
    cached = cols.num("cached_tokens")
    for t in np.unique(target_code[same & (target_code >= 0)]).tolist():
        rows = np.flatnonzero(same & (target_code == t))
        got = cost_usd_columns(pol, targets[t], pt_raw[rows], ct_raw[rows], cached[rows])
        if got is not None:  # NaN: no tokens logged at all (cost_usd is None)
            up_cost[rows], up_has[rows] = np.nan_to_num(got), ~np.isnan(got)
    same_rows = np.flatnonzero(same)
    up_tok[same_rows] = np.trunc(np.nan_to_num(pt_raw[same_rows]) + np.nan_to_num(ct_raw[same_rows]))
    up_at[same_rows] = a["settle_logged"][same_rows]
    # another plan, or it never ran upstream live: estimated tokens and latency, expected cost
    other = np.flatnonzero(mine & ~same)
    unpriced: list[set[str]] = []
    unmeasured: list[set[str]] = []
    unpriced_of = np.full(n, -1, np.int32)
    estimate_of = np.full(n, -1, np.int32)
    del pt_raw, ct_raw, cached, failed, same, target_code
    release_memory()  # the upstream costs' temporaries: the estimates' are made over them
    if len(other):
        p_, c_, ms = _estimated_usage(c, cols, other, ran_upstream & has_tokens, has_tokens)
        cols.drop(_READ_BEFORE_ESTIMATES)  # under the estimates and this step's arrays (the fold's peak)
        release_memory()  # the logged cost and cached tokens (~16 MB at 1M rows) and the usage's temporaries
        route_code, routes = cols.codes("route")
        code, first = factorize(route_code[other], plan_code[other])
        model = ExpectedCosts(pol, c.costs.failure)  # CostModel.expected on arrays
        for j, i in enumerate(other[first].tolist()):
            model.unpriced, model.unmeasured = set(), set()
            at = np.flatnonzero(code == j)
            r = routes[int(route_code[i])] if route_code[i] >= 0 else None
            got = model.expected(c.costs.tries(pol, r), plans[int(plan_code[i])], p_[at], c_[at])
            if got is not None:
                up_cost[other[at]], up_has[other[at]] = got, True
            unpriced.append(model.unpriced)
            unmeasured.append(model.unmeasured)
        estimate_of[other] = code
        unpriced_of[other] = np.where(np.array([bool(s) for s in unpriced], np.bool_)[code], code, -1)
        up_tok[other] = np.rint(p_ + c_)
        up_at[other] = a["decide"][other] + ms / 1000
    # the kernel rounds a cost to nano-dollars where it commits it (no int64 array beside the float64 one)
    fits_nano(up_cost)
    a["up_cost"], a["up_has"], a["up_tok"], a["up_at"] = up_cost, up_has, tokens_of(up_tok), up_at
    del up_tok
    c.costs.estimated(estimate_of, unmeasured)  # counted for the rows the fold serves upstream
    return unpriced, unpriced_of


def _estimated_usage(
    c: Composer, cols: Cols, rows: np.ndarray, own: np.ndarray, has_tokens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt, completion tokens, latency ms) of serving ``rows`` on another plan: its own logged
    usage when it ran upstream live, else its cache source's, else its route's mean."""
    src = source_rows(cols.w, cols.arrow("cache_source").take(pa.array(rows, pa.int64())))
    mine = own[rows]
    from_src = ~mine & (src >= 0) & has_tokens[np.maximum(src, 0)]
    route_code, routes = cols.codes("route")
    means = [c.means.get(r or "", (0.0, 0.0)) for r in routes] + [c.means.get("", (0.0, 0.0))]
    lat = np.array([c.latency.get(r or "", 0.0) for r in routes] + [c.latency.get("", 0.0)], np.float64)
    rc = route_code[rows]
    mp, mc = np.array([m[0] for m in means], np.float64)[rc], np.array([m[1] for m in means], np.float64)[rc]
    s = np.maximum(src, 0)
    at = lambda name, r: np.nan_to_num(cols.num(name)[r])  # noqa: E731  (NULL read as 0)
    p_ = np.where(mine, at("prompt_tokens", rows), np.where(from_src, at("prompt_tokens", s), mp))
    c_ = np.where(mine, at("completion_tokens", rows), np.where(from_src, at("completion_tokens", s), mc))
    ms = np.where(mine, at("latency_ms", rows), np.where(from_src, at("latency_ms", s), lat[rc]))
    return p_.astype(np.float64), c_.astype(np.float64), ms


# -- the exact cache -----------------------------------------------------------------------------
