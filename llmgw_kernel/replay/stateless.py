"""The composed replay's outcome for a policy with no stateful stage, computed over columns.

When nothing in the window couples requests — the policy has no budget, no rate limit and no
cache on any route the window uses, no key in the key history carries a budget or a rate limit
of its own, and one policy decides every row — the composed fold (:mod:`.fold`) has nothing
to fold: every routed request is admitted without a limit (``replay_admission`` None), reaches
no cache, and is served upstream (or is an unknown model). Its cost is what
:meth:`.fold.Composer.served` says, which for such a policy depends on the request's own
logged facts only:

- it **ran live on the same plan** (admitted live, not a live cache hit, logged plan equal to
  the candidate's): the logged tokens (and cached prompt tokens) at the candidate's price of
  the target that served; a request that failed upstream (no target) costs what it cost live;
- **otherwise** the expected cost along the candidate's plan (:meth:`.costs.CostModel.expected`)
  of its own logged tokens when it ran live (not a hit) and logged any, else of its cache
  source's tokens when the source is in the window and logged any, else of its route's mean
  logged tokens.

Those rules are the fold's; this module applies them to whole columns (vectorised costs:
:mod:`.costs_columnar`), so a routing-only replay builds no Python object per request. The
outcome equals the fold's, column for column (tests/replay/test_stateless.py replays both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from .columns import grouped, numbers, strings
from .costs_columnar import ExpectedCosts, cost_estimates, cost_usd_columns
from .routing_estimates import _tries, take_rows, tokens

if TYPE_CHECKING:
    from ..keys.store import KeyHistory
    from ..policy.model import Policy
    from .costs import CostEstimates
    from .routing_stage import RoutingDecisions
    from .window import Window

#: ``served_by`` codes: not routed (None), upstream, unknown model
NOT_ROUTED, UPSTREAM, UNKNOWN_MODEL = 0, 1, 2
SERVED_BY = (None, "upstream", "unknown_model")
#: the log columns the outcome reads (one scan)
STATELESS_COLUMNS = ("admission", "cache", "target", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
                     "cache_source", "outcome", "latency_ms", "attempts")  # fmt: skip
_HIT_KINDS = ("hit", "semantic-hit")


def is_stateless(policy: Policy, window: Window, history: KeyHistory | None, row_policies: Any) -> bool:
    """True when no request of ``window`` can affect another's decisions under ``policy``."""
    if row_policies is not None or policy.rate_limits or (policy.budgets is not None and policy.budgets.limits):
        return False
    _, routes = window.codes("route")
    if any(policy.cache_for(r) is not None for r in routes):
        return False
    return history is None or not any(_limited(history, key_id, cur.version) for key_id, cur in history.current.items())


def _limited(history: KeyHistory, key_id: str, versions: int) -> bool:
    """Whether any version of a key carried a budget or a rate limit of its own."""
    for v in range(1, versions + 1):
        key = history.version(key_id, v)
        if key is not None and (key.settings.budget_usd is not None or key.settings.rpm or key.settings.tpm):
            return True
    return False


@dataclass
class StatelessOutcome:
    """Per request (window order), what the composed replay decides for a stateless policy."""

    served_by: np.ndarray  # int8 codes into SERVED_BY
    cost: np.ndarray  # float64; NaN where the fold's cost is None (see ``cost_known``)
    cost_known: np.ndarray  # bool
    unpriced: set[str] = field(default_factory=set)
    unmeasured: set[str] = field(default_factory=set)


def stateless_outcome(
    policy: Policy, window: Window, routing: RoutingDecisions, estimates: CostEstimates | None = None
) -> StatelessOutcome:
    """The fold's outcome, cost and served-by for every request (see the module docstring)."""
    window.prefetch(STATELESS_COLUMNS)
    est = estimates if estimates is not None else cost_estimates(window)
    n = len(window)
    codes = routing.plan_codes
    # per plan code (the last: -1, not routed) what serves it: one lookup per row
    served_by = np.asarray([UPSTREAM if p else UNKNOWN_MODEL for p in routing.plans] + [NOT_ROUTED], np.int8)[codes]
    upstream = served_by == UPSTREAM
    cost = np.full(n, np.nan)
    known = np.zeros(n, bool)
    adm_codes, adm_values = window.codes("admission")
    ran = np.asarray([v == "ok" for v in adm_values] + [True], bool)[adm_codes]  # admitted live (NULL: not limited)
    cache_codes, cache_values = window.codes("cache")
    ran_not_hit = ran & ~_isin(cache_codes, cache_values, _HIT_KINDS)
    pt, ct = window.numpy("prompt_tokens"), window.numpy("completion_tokens")
    same = upstream & ran_not_hit & (routing.logged_codes == codes)
    _cost_as_ran(policy, window, np.flatnonzero(same), pt, ct, cost, known)
    model = ExpectedCosts(policy, est.failure)
    other = np.flatnonzero(upstream & ~same)
    if other.size:
        tokens_at = _tokens_of(window, other, ran_not_hit, pt, ct)
        _expected_costs(
            policy, window, routing, model, other, tokens_at, _route_means(est, window.codes("route")[1]), cost, known
        )
    return StatelessOutcome(served_by, cost, known, model.unpriced, model.unmeasured)


def _isin(codes: np.ndarray, values: list[Any], wanted: Sequence[str]) -> np.ndarray:
    table = np.asarray([v in wanted for v in values] + [False], bool)
    return table[codes]  # type: ignore[no-any-return]


_NO_CACHED = np.full(1, np.nan)  # NULL cached tokens, for any number of rows (broadcast)


def _cost_as_ran(
    policy: Policy, window: Window, rows: np.ndarray, pt: np.ndarray, ct: np.ndarray, cost: np.ndarray,
    known: np.ndarray,
) -> None:  # fmt: skip
    """Requests served live on the candidate's plan: their logged tokens at the candidate's
    price of the target that served (no target: the logged cost, or 0)."""
    if not rows.size:
        return
    target_codes, targets = window.codes("target")
    tc = target_codes[rows]
    failed = rows[tc < 0]
    logged = window.numpy("cost_usd")[failed]
    cost[failed] = np.nan_to_num(logged, nan=0.0)
    known[failed] = True
    # these rows' cached prompt tokens only (NaN for NULL): the column is read by nothing else;
    # a column of NULLs (a log whose upstreams report none) is one NaN for every row, not a gather
    none_cached = window.arrow("cached_tokens").null_count == len(window)
    cached = (
        _NO_CACHED
        if none_cached
        else pc.cast(window.take("cached_tokens", rows), pa.float64()).to_numpy(zero_copy_only=False)
    )
    # each target's rows (ascending, as ``rows[tc == t]``) from one sort, not a pass per target
    order, bounds = grouped(np.where(tc < 0, len(targets), tc))
    for t in np.flatnonzero(np.diff(bounds[: len(targets) + 1])).tolist():
        at = order[bounds[t] : bounds[t + 1]]
        mine = rows[at]
        c = cost_usd_columns(policy, targets[t], pt[mine], ct[mine], cached if none_cached else cached[at])
        if c is not None:
            cost[mine] = c
            known[mine] = ~np.isnan(c)


def _tokens_of(window: Window, rows: np.ndarray, ran_not_hit: np.ndarray, pt: np.ndarray, ct: np.ndarray) -> np.ndarray:
    """The window row whose logged tokens the expected cost of each of ``rows`` is computed
    from: its own when it ran live (not a hit) and logged any, else its cache source's when
    the source is in the window and logged any, else -1 (its route's mean: :func:`_route_means`).
    A row index, not the counts: each (route, plan)'s rows read their counts once, in
    :func:`_expected_costs` (no two full-length copies of counts and a gather of each again)."""
    logged = ~(np.isnan(pt) & np.isnan(ct))  # per window row: it logged a token count
    own = ran_not_hit[rows]
    own &= logged[rows]
    out = np.where(own, rows, -1)
    rest = np.flatnonzero(~own)
    if rest.size:
        src = _source_rows(window, rows[rest])
        at = np.flatnonzero(src >= 0)
        at = at[logged[src[at]]]  # a source that logged tokens
        out[rest[at]] = src[at]
    return out  # type: ignore[no-any-return]


def _route_means(est: CostEstimates, routes: list[Any]) -> np.ndarray:
    """The mean logged (prompt, completion) tokens of each route (a row per route code; the
    last, also at -1: no route)."""
    return np.asarray([est.means.get(r, (0.0, 0.0)) for r in routes] + [est.means.get("", (0.0, 0.0))])


def _source_rows(window: Window, rows: np.ndarray) -> np.ndarray:
    """The window row of each of ``rows``' cache source (-1: none, or not in the window)."""
    with_source = np.flatnonzero(window.valid("cache_source")[rows])
    out = np.full(len(rows), -1, np.int64)
    if with_source.size:
        out[with_source] = source_rows(window, window.take("cache_source", rows[with_source]))
    return out


def source_rows(window: Window, sources: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The window row of each request id in ``sources`` (-1: NULL, or not in the window): the last
    row with it, as a dict built row by row keeps (a window given as columns may repeat an id).

    Only the window's ids that may be a source are hashed (:func:`_maybe_sources`: a superset
    found without hashing strings, ~9% of a gateway's window; else every id, where the column
    lies). A window read from a log has unique ids (log/schema.py): the sources are looked up in
    a hash table of those few ids. Otherwise the distinct sources are hashed and the ids looked up
    in them, keeping each source's last row."""
    whole = sources.combine_chunks() if isinstance(sources, pa.ChunkedArray) else sources
    if whole.null_count == len(whole):
        return np.full(len(whole), -1, np.int64)
    ids = window.arrow("request_id")
    if ids.type != whole.type:  # all NULL (a null column), or another string type
        ids = ids.cast(whole.type)
    maybe = _maybe_sources(ids, whole)  # the rows whose id may be a source (None: every row)
    probed = ids if maybe is None else take_rows(ids, maybe)  # ascending: chunk by chunk
    if window.from_log and maybe is not None:  # unique ids: each source's row is the one with it
        k = pc.fill_null(pc.index_in(whole, value_set=probed, skip_nulls=True), -1).to_numpy(zero_copy_only=False)
        return np.where(k >= 0, maybe[np.maximum(k, 0)], -1)  # type: ignore[no-any-return]
    enc = whole.dictionary_encode()  # NULL: a NULL index, not in the dictionary
    distinct = enc.dictionary
    where = pc.fill_null(pc.index_in(probed, value_set=distinct), -1).to_numpy()
    found = np.flatnonzero(where >= 0)
    last = np.full(len(distinct), -1, np.int64)  # each distinct source's (last) row
    np.maximum.at(last, where[found], found if maybe is None else maybe[found])
    k = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    return np.where(k >= 0, last[np.maximum(k, 0)], -1)  # type: ignore[no-any-return]


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # an odd multiplier: a word's top bits after it address a slot


def _maybe_sources(ids: pa.ChunkedArray, sources: pa.Array) -> np.ndarray | None:
    """The window rows (ascending) whose id may equal one of ``sources`` (not all NULL) — a
    superset, so that only they are hashed by Arrow: when every source is ``w`` ≥ 8 bytes long
    (a gateway's ids are one length), an id of another length is none of them, and one whose
    last 8 bytes, multiplied by an odd constant, address a slot no source's do is none of them
    either. The ids are read where they lie (a chunk of ids of one length: one strided view of
    its bytes). None (probe every row) when the sources differ in length or are shorter than a
    word."""
    if not (pa.types.is_string(sources.type) or pa.types.is_large_string(sources.type)):
        return None
    ends = _offsets(sources)
    begins, lengths = ends[:-1], np.diff(ends)
    if sources.null_count:
        valid = sources.is_valid().to_numpy(zero_copy_only=False)
        begins, lengths = begins[valid], lengths[valid]
    width = int(lengths[0])
    if width < 8 or not (lengths == width).all():
        return None
    bits = int(min(22, max(10, (32 * len(lengths) - 1).bit_length())))
    table = np.zeros(1 << bits, bool)
    table[_slots(_tail_words(sources, begins, width), bits)] = True
    out, start = [], 0
    for chunk in ids.chunks:
        ends = _offsets(chunk)
        n = len(chunk)
        if n and int(ends[-1] - ends[0]) == n * width and (np.diff(ends) == width).all():
            # one length: the chunk's ids are rows of ``width`` bytes; their last words a strided view
            tails = np.ndarray((n,), "<u8", chunk.buffers()[2], int(ends[0]) + width - 8, (width,))
            out.append(np.flatnonzero(table[_slots(tails, bits)]) + start)
        elif n:
            fits = np.flatnonzero(np.diff(ends) == width)
            out.append(fits[table[_slots(_tail_words(chunk, ends[fits], width), bits)]] + start)
        start += n
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _offsets(arr: pa.Array) -> np.ndarray:
    """A string array's value offsets (n + 1, into its data buffer), read in place."""
    kind = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    return np.frombuffer(arr.buffers()[1], kind, len(arr) + 1, arr.offset * np.dtype(kind).itemsize)


def _tail_words(arr: pa.Array, begins: np.ndarray, width: int) -> np.ndarray:
    """The last 8 bytes, as a little-endian word, of the ``width``-byte strings starting at
    ``begins`` in ``arr``'s data."""
    data = arr.buffers()[2]
    if not len(begins):
        return np.zeros(0, np.uint64)
    words = np.ndarray((data.size - 7,), "<u8", data, 0, (1,))  # a word at every byte
    return words[begins.astype(np.int64) + (width - 8)]  # type: ignore[no-any-return]


def _slots(words: np.ndarray, bits: int) -> np.ndarray:
    """Each word's slot: the top ``bits`` of it times :data:`_FIBONACCI` (as int64: an index)."""
    slots = words * _FIBONACCI
    slots >>= np.uint64(64 - bits)
    return slots.view(np.int64)


def _expected_costs(
    policy: Policy, window: Window, routing: RoutingDecisions, model: ExpectedCosts, rows: np.ndarray,
    tokens_at: np.ndarray, means: np.ndarray, cost: np.ndarray, known: np.ndarray,
) -> None:  # fmt: skip
    """The expected cost of ``rows`` along their plans, per (route, plan), in the order the fold
    first meets each pair (the order unpriced targets are recorded in): of the logged tokens of
    window row ``tokens_at`` (:func:`_tokens_of`; NULL counts as 0), or, where it is -1, of the
    route's mean tokens (``means``: :func:`_route_means`). A pair's rows at the mean cost one
    value: it is computed once (the same float operations as for each row) and given to all."""
    (pt0, _), (ct0, _) = tokens(window, "prompt_tokens"), tokens(window, "completion_tokens")  # NULL as 0
    route_codes, routes = window.codes("route")
    wide = (len(routing.plans) + 1) * (len(routes) + 1) >= 2**31
    group = routing.plan_codes[rows].astype(np.int64 if wide else np.int32)  # int32: half the pages
    group *= len(routes) + 1
    group += route_codes[rows]
    group += 1
    order, bounds = grouped(group)
    del group
    present = np.flatnonzero(np.diff(bounds))  # the pairs with rows; the first row of each: order[bounds[g]]
    for g in present[np.argsort(order[bounds[present]], kind="stable")].tolist():  # in order of first row
        mine = order[bounds[g] : bounds[g + 1]]
        plan, r = routing.plans[g // (len(routes) + 1)], g % (len(routes) + 1) - 1
        tries = _tries(policy, routes[r] if r >= 0 else None)
        src = tokens_at[mine]
        at_mean = src < 0
        each = mine[~at_mean] if at_mean.any() else mine
        src = src[~at_mean] if each is not mine else src
        c = model.expected(tries, plan, pt0[src], ct0[src])
        if c is None:
            continue
        cost[rows[each]] = c
        known[rows[each]] = True
        if each is not mine:
            shared = model.expected(tries, plan, means[r : r + 1, 0] if r >= 0 else means[-1:, 0],
                                    means[r : r + 1, 1] if r >= 0 else means[-1:, 1])  # fmt: skip
            assert shared is not None  # priced: the same plan priced ``each``
            cost[rows[mine[at_mean]]] = shared[0]
            known[rows[mine[at_mean]]] = True


# -- the stages' columns when nothing was folded -------------------------------------------------
def _strings(window: Window, name: str) -> Any:
    """A logged string column as :func:`.columns.strings` gives it."""
    codes, values = window.codes(name)
    return strings(values, codes)


def _nones(window: Window) -> np.ndarray:
    """A column of None per request, one read-only array shared by every stage column that has
    no value (seven of them: 8 bytes a row each, filled — fresh pages — once, not seven times);
    read-only, so no consumer can change one column through another."""

    def make() -> np.ndarray:
        out = np.full(len(window), None, object)
        out.flags.writeable = False
        return out

    return window.memo("stateless:nones", make)  # type: ignore[no-any-return]


def stateless_limits_columns(window: Window) -> tuple[dict[str, Any], np.ndarray]:
    """The limits stage: no limit applied, so every request the live proxy refused differs."""
    none = _nones(window)
    logged = _strings(window, "admission")
    codes, values = window.codes("admission")
    differs = _isin(codes, values, [v for v in values if v != "ok"])
    cols = {"logged_admission": logged, "replay_admission": none, "replay_admission_reason": none,
            "replay_admission_limit": none}  # fmt: skip
    return cols, differs


def stateless_cache_columns(window: Window) -> tuple[dict[str, Any], np.ndarray]:
    """The cache stage: no request reaches a cache, so every request that did live differs."""
    none = _nones(window)
    codes, _ = window.codes("cache")
    cols = {"logged_cache": _strings(window, "cache"), "replay_cache": none, "replay_cache_source": none,
            "replay_cache_similarity": none}  # fmt: skip
    return cols, codes >= 0


def _number_column(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A float column as a list of float | None reads in pandas (all None: an object column)."""
    return numbers(values, valid)  # type: ignore[no-any-return]


def stateless_cost_columns(window: Window, outcome: StatelessOutcome) -> dict[str, Any]:
    """The cost stage: the logged and replayed cost, nothing saved, and who served."""
    return {
        "logged_cost_usd": _number_column(window.numpy("cost_usd"), window.valid("cost_usd")),
        "replay_cost_usd": _number_column(outcome.cost, outcome.cost_known),
        "replay_saved_usd": _nones(window),
        "replay_served_by": strings(list(SERVED_BY[1:]), outcome.served_by.astype(np.int32) - 1),
    }


def logged_cost_values(window: Window) -> list[float]:
    """The logged costs that are not NULL, in window order (as Python floats, for ``sum``)."""
    values = window.numpy("cost_usd")
    return values[window.valid("cost_usd")].tolist()  # type: ignore[no-any-return]
