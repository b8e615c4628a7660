"""The routing stage of a replay: the candidate's target order for every logged request, in bulk.

Requests are grouped by route. A route whose plan depends on the request id alone (weighted,
declared order, single target) is planned with one bulk draw
(:func:`~llmgw_kernel.decisions.routing.plan_routes`); only routes with rules, a rule function
or a sticky key rebuild each request's :class:`~llmgw_kernel.decisions.context.RouteContext`
(parsing only their rows' ``request_body`` and ``metadata``). Plans are interned: every request
with the same order shares one list object (read them, do not mutate them), and the reason of a
weighted draw is one shared string per (plan, draw to four decimals), worded exactly as
:func:`~llmgw_kernel.decisions.routing.plan_route` words it.

A check of a sampled semantic hit (``endpoint = 'cache.check'``, proxy/cache_verify.py) is
planned as its hit: live it asks the hit's plan, so its draws hash the hit's request id (its
``cache_source``), not its own. It is a row, not a request: :func:`summarize_routing` leaves
checks out of ``routed``, ``unknown_model``, the shares and ``first_target_changed``.

Columns: ``logged_target``, ``replay_target`` (first targets), ``replay_plan`` (list | None),
``replay_route_reason``; a request differs when its logged and replayed plans differ.

Every request is drawn by the weighted draw that routed it live (the log's ``route_draw``,
:func:`logged_route_draws`): a log written before the draw changed replays its own routes
exactly, under the live policy and under a candidate alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..decisions.context import RouteContext, route_context
from ..decisions.routing import (
    DRAW_BATCH,
    ROUTABLE_ERRORS,
    UNKNOWN_ROUTE,
    BulkPlans,
    draws_per_request,
    needs_context,
    plan_routes,
    weighted_codes,
    weighted_plans,
)
from ..log.schema import ROUTE_DRAW, ROUTE_DRAW_V1
from .columns import as_objects, json_value, strings
from .fold_columns import checks
from .routing_estimates import estimate_coded, logged_cost, take_rows
from .window import LENT, Window, as_window, split_plan

if TYPE_CHECKING:
    from ..policy.model import Policy

Columns = dict[str, Any]  # column name -> one value per logged request (list or numpy array)


class RoutingDecisions:
    """Every request's replayed plan as codes: ``plans[plan_codes[i]]`` (-1: not routed), its
    reason ``reasons[reason_codes[i]]``, and the logged plan coded into the same table."""

    def __init__(self, n: int) -> None:
        self.plans: list[tuple[str, ...]] = []
        self._plan_index: dict[tuple[str, ...], int] = {}
        self.plan_codes = np.full(n, -1, np.int32)
        self.logged_codes = np.full(n, -1, np.int32)
        self.reasons: list[str] = []
        self._reason_index: dict[str, int] = {}
        self.reason_codes = np.full(n, -1, np.int32)
        self.checks: np.ndarray | None = None  # True for a check of a semantic hit (None: the window has none)
        #: (replayed, logged) first target of every row, coded as :meth:`firsts` (set by :func:`routing_columns`)
        self.first_codes: tuple[np.ndarray, np.ndarray] | None = None

    def _intern_plan(self, plan: tuple[str, ...]) -> int:
        code = self._plan_index.get(plan)
        if code is None:
            code = self._plan_index[plan] = len(self.plans)
            self.plans.append(plan)
        return code

    def reason_code(self, reason: str) -> int:
        code = self._reason_index.get(reason)
        if code is None:
            code = self._reason_index[reason] = len(self.reasons)
            self.reasons.append(reason)
        return code

    def reason_codes_of(self, reasons: list[str]) -> np.ndarray:
        """:meth:`reason_code` of each of ``reasons`` (distinct), as an int32 array: a route's
        thousands of weighted reasons, new to the table, are added at once."""
        index = self._reason_index
        if not index.keys().isdisjoint(reasons):
            return np.asarray([self.reason_code(r) for r in reasons], np.int32)
        base = len(self.reasons)
        self.reasons.extend(reasons)
        index.update(zip(reasons, range(base, base + len(reasons)), strict=True))
        return np.arange(base, base + len(reasons), dtype=np.int32)

    def firsts(self) -> tuple[np.ndarray, list[str]]:
        """(the first target of every plan of the table as a code into the returned target ids,
        -1 for an empty plan, with a trailing -1 so that plan code -1 maps to -1; the ids)."""
        ids: dict[str, int] = {}
        table = np.asarray([ids.setdefault(p[0], len(ids)) if p else -1 for p in self.plans] + [-1], np.int32)
        return table, list(ids)


#: requests planned per call (their ids and contexts are Python objects while planned)
PLAN_CHUNK_ROWS = 1 << 19
#: request ids held as Python str at once while a chunk is drawn
ID_BATCH_ROWS = 1 << 14
#: the log columns routing reads (``endpoint``: a check of a semantic hit is drawn as its hit, and
#: the codes are read by every replay — in the window's first scan, not a second one; ``route_draw``:
#: the draw that routed each row)
ROUTING_COLUMNS = ("route", "plan", "error_type", "attempts", "prompt_tokens", "completion_tokens", "target", "origin",
                   "endpoint", "route_draw")  # fmt: skip


def decide_routes(policy: Policy, window: Window, row_policies: Sequence[Policy] | None = None) -> RoutingDecisions:
    """The candidate's plan for every logged request the live proxy routed (see
    :func:`~llmgw_kernel.decisions.routing.routed_live`), grouped by route. ``row_policies``
    (one per row): each row is planned by its own policy (a window spanning reloads)."""
    window.prefetch(ROUTING_COLUMNS)
    n = len(window)
    out = RoutingDecisions(n)
    route_codes, route_values = window.codes("route")
    logged_codes, logged_values = window.codes("plan")
    err_codes, err_values = window.codes("error_type")
    routable = np.asarray([e in ROUTABLE_ERRORS for e in err_values] + [False], bool)
    origin_codes, _ = window.codes("origin")
    routed = (logged_codes >= 0) | routable[err_codes] | (origin_codes >= 0)  # routed_live(), by column
    logged_table = np.asarray([out._intern_plan(tuple(split_plan(v) or ())) for v in logged_values] + [-1], np.int32)
    out.logged_codes = logged_table[logged_codes]
    out.checks = check_rows(window)
    for pol, mine in _by_policy(policy, row_policies, n):
        planned = route_codes.copy()  # each row's route code, -1 where this policy plans nothing
        planned[~(routed & mine)] = -1
        for r, route in enumerate(route_values):
            rows = np.flatnonzero(planned == r)
            if rows.size:
                _plan_rows(pol, window, route, rows, out)
    return out


def check_rows(window: Window) -> np.ndarray | None:
    """True for each row that is a check of a semantic hit; None when the window holds none (or
    has no ``endpoint`` column). The endpoint's codes are shared with the stages that read them
    (:func:`.fold_columns.checks`), so a window without checks costs one read of them."""
    if "endpoint" not in window.columns:
        return None
    found = checks(window)
    return found if found.any() else None


def draw_ids(window: Window, rows: np.ndarray, is_check: np.ndarray | None) -> pa.Array:
    """The request id each of ``rows`` is drawn by: its own, or for a check of a semantic hit its
    hit's (``cache_source``): live, the check asks the plan its hit was given."""
    ids = _taken(window, "request_id", rows)
    mask = is_check[rows] if is_check is not None else None
    if mask is None or not mask.any() or "cache_source" not in window.columns:  # no hit to draw by
        return ids
    own = _taken(window, "request_id", rows[mask])
    hits = pc.coalesce(_taken(window, "cache_source", rows[mask]).cast(ids.type), own)  # no hit logged: its own
    return pc.replace_with_mask(ids, pa.array(mask), hits)


def _taken(window: Window, name: str, rows: np.ndarray) -> pa.Array:
    """``window.take(name, rows)``, taken from the slice of the column the rows span, chunk by
    chunk (:func:`.routing_estimates.take_rows`: a take from a chunked column resolves every chunk)."""
    if name in LENT or not len(rows) or name not in window.columns:
        return window.take(name, rows)
    lo, hi = int(rows.min()), int(rows.max())
    got = take_rows(window.arrow(name).slice(lo, hi - lo + 1), rows - lo)
    return got.dictionary_decode() if pa.types.is_dictionary(got.type) else got


def logged_route_draws(window: Window) -> np.ndarray | None:
    """The weighted draw that routed each row (``route_draw`` as int8; NULL, a row written before
    the column, is :data:`~llmgw_kernel.log.schema.ROUTE_DRAW_V1`), or None when every row was
    drawn by the current one (the common case: nothing to choose per row). A window given as
    columns without ``route_draw`` is current (it is not a log an older release wrote)."""

    def compute() -> np.ndarray | None:
        if "route_draw" not in window.columns:
            return None
        col = window.arrow("route_draw").cast(pa.int8())
        kinds = pc.fill_null(col, ROUTE_DRAW_V1).to_numpy().astype(np.int8, copy=False)
        return None if not kinds.size or bool((kinds == ROUTE_DRAW).all()) else kinds

    return window.memo("route_draws", compute)  # type: ignore[no-any-return]


def _by_policy(policy: Policy, row_policies: Sequence[Policy] | None, n: int) -> list[tuple[Policy, np.ndarray | bool]]:
    if row_policies is None:
        return [(policy, True)]
    ids = np.asarray([id(p) for p in row_policies], np.int64)
    firsts = {id(p): p for p in row_policies}
    return [(p, ids == key) for key, p in firsts.items()]


def _plan_rows(policy: Policy, window: Window, route: str, rows: np.ndarray, out: RoutingDecisions) -> None:
    """Plan the requests ``rows`` (all on ``route``) into ``out``."""
    if route not in policy.routes:
        out.plan_codes[rows] = out._intern_plan(())
        out.reason_codes[rows] = out.reason_code(UNKNOWN_ROUTE)
        return
    per_request = draws_per_request(policy, route)
    kinds = logged_route_draws(window) if per_request else None
    if per_request and not needs_context(policy, route):  # a weighted draw by the request id alone
        _place(out, _weighted_rows(policy, window, route, rows, out.checks, kinds), rows, owned=True)
        return
    for lo in range(0, len(rows), PLAN_CHUNK_ROWS):  # bounded: one Python str per request id of a chunk
        chunk = rows[lo : lo + PLAN_CHUNK_ROWS]
        # a route that plans every request alike needs no ids (only how many)
        drawn = draw_ids(window, chunk, out.checks) if per_request else None
        contexts = logged_contexts(window, chunk, drawn) if per_request else None
        ids: Any = [""] * len(chunk) if drawn is None else ArrowStrings(drawn)  # planned row by row (contexts)
        _place(out, plan_routes(policy, route, ids, contexts, kinds[chunk] if kinds is not None else None), chunk)


def _weighted_rows(
    policy: Policy, window: Window, route: str, rows: np.ndarray, is_check: np.ndarray | None,
    kinds: np.ndarray | None,
) -> BulkPlans:  # fmt: skip
    """:func:`~llmgw_kernel.decisions.routing.plan_routes` of a weighted route's ``rows``, their
    ids taken and drawn :data:`~llmgw_kernel.decisions.routing.DRAW_BATCH` rows at a time: what
    the draws leave behind is one int32 per row, not a million ids and draws."""
    targets = policy.routes[route].targets
    codes = np.empty(len(rows), np.int32)
    for lo in range(0, len(rows), DRAW_BATCH):
        part = rows[lo : lo + DRAW_BATCH]
        weighted_codes(policy.version, targets, draw_ids(window, part, is_check),
                       kinds[part] if kinds is not None else None, codes[lo : lo + len(part)])  # fmt: skip
    return weighted_plans(route, targets, codes)


def _place(out: RoutingDecisions, bulk: BulkPlans, rows: np.ndarray, owned: bool = False) -> None:
    """Write one route's plans for ``rows`` into ``out``, their plans and reasons interned
    (``owned``: ``bulk``'s two code arrays are distinct and the caller's, recoded in place)."""
    plan_map = np.asarray([out._intern_plan(p) for p in bulk.plans], np.int32)
    out.plan_codes[rows] = _recode(plan_map, bulk.codes, owned)
    out.reason_codes[rows] = _recode(out.reason_codes_of(bulk.reasons), bulk.reason_codes, owned)


def _recode(table: np.ndarray, codes: np.ndarray, in_place: bool) -> np.ndarray:
    """``table[codes]``; a table of consecutive codes (new to ``out``) as an addition, in place
    when allowed (a route's million draws: no gathered copy)."""
    if not in_place or not len(table) or not np.array_equal(table, np.arange(table[0], table[0] + len(table))):
        return table[codes]
    codes += table[0]
    return codes


class ArrowStrings(Sequence[str]):
    """An Arrow string array read as a sequence of str, iterated in batches of
    :data:`ID_BATCH_ROWS`: the draws hash a million request ids with a few thousand Python
    strings alive at a time, not a million (each one a fresh page of memory to touch)."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self.array[i].as_py()  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        for lo in range(0, len(self.array), ID_BATCH_ROWS):
            yield from self.array.slice(lo, ID_BATCH_ROWS).to_pylist()


def _objects(values: list[Any], codes: np.ndarray) -> np.ndarray:
    """An object column from a table of values and a code per row (-1 → None)."""
    table = np.empty(len(values) + 1, object)
    table[: len(values)] = values
    return table[codes]


def routing_columns(decided: RoutingDecisions) -> tuple[Columns, np.ndarray]:
    """The stage's columns and the rows whose replayed plan differs from the logged one.
    ``replay_plan`` is an object array (one shared list per distinct plan); the string columns
    are Arrow arrays (:func:`.columns.strings`)."""
    table, targets = decided.firsts()
    decided.first_codes = (table[decided.plan_codes], table[decided.logged_codes])
    cols: Columns = {  # strings as Arrow arrays (no Python object per row); plans as shared lists
        "logged_target": strings(targets, decided.first_codes[1]),
        "replay_target": strings(targets, decided.first_codes[0]),
        "replay_plan": _objects([list(p) for p in decided.plans], decided.plan_codes),
        "replay_route_reason": strings(decided.reasons, decided.reason_codes),
    }
    return cols, _differs(decided.plan_codes, decided.logged_codes, decided._plan_index.get((), -1))


def _differs(replayed: np.ndarray, logged: np.ndarray, empty: int) -> np.ndarray:
    """Whether each row's replayed plan code differs from its logged one, an empty plan (code
    ``empty``; -1: none in the table) being no plan (-1): ``(logged or None) != (new or None)``."""
    out = replayed != logged
    if empty >= 0:  # the rows with an empty plan on one side are few: fixed one by one
        for mine, other in ((replayed, logged), (logged, replayed)):
            rows = np.flatnonzero(mine == empty)
            out[rows] = (other[rows] != -1) & (other[rows] != empty)
    return out


def route_window(
    policy: Policy, window: Window | Mapping[str, Any], row_policies: Sequence[Policy] | None = None
) -> tuple[RoutingDecisions, Columns, np.ndarray]:
    """(the coded decisions, the stage's columns, differs per request as a bool array). The
    coded decisions stay on the window (``window["_routing"]``) for :func:`summarize_routing`.
    ``row_policies``: see :func:`decide_routes`. A dict of lists is read as a window."""
    given, window = window, as_window(window)
    decided = decide_routes(policy, window, row_policies)
    cols, differs = routing_columns(decided)
    window["_routing"] = (decided, cols["replay_plan"])
    if isinstance(given, dict) and given is not window:
        given["_routing"] = window["_routing"]
    return decided, cols, differs


def replay_routing_stage(
    policy: Policy, window: Window | Mapping[str, Any], row_policies: Sequence[Policy] | None = None
) -> tuple[Columns, list[bool]]:
    """:func:`route_window` as (columns as object arrays, differs per request as a list)."""
    _, cols, differs = route_window(policy, window, row_policies)
    return {k: as_objects(v) for k, v in cols.items()}, differs.tolist()


def logged_contexts(window: Window, rows: np.ndarray, ids: pa.Array | None = None) -> list[RouteContext]:
    """The routing contexts of the logged requests ``rows`` (see :func:`logged_context`);
    ``ids``: the request id each is drawn by (:func:`draw_ids`), else its own."""
    take = _taker(window, rows)
    rids = ids.to_pylist() if ids is not None else take("request_id")
    cols = zip(rids, take("route"), take("request_body"), take("api"), take("metadata"),
               take("prompt_tokens"), strict=True)  # fmt: skip
    return [_context(*row) for row in cols]


def logged_context(window: Window | Columns, i: int) -> RouteContext:
    """The routing context of logged request ``i``, rebuilt as the live pipeline built it.

    The body is the logged ``request_body`` (bodies: full) with ``metadata`` removed, as
    the pipeline does; ``/v1/messages`` bodies are translated to OpenAI form first. Without
    a logged body (bodies: hashed | none) the prompt size is the logged ``prompt_tokens``
    and the body's ``user`` is unknown (metadata.user still applies): conditions on prompt
    size and sticky-by-body-user may then differ from live.
    """

    def col(name: str) -> Any:
        values = window.get(name)
        return values[i] if values is not None else None

    return _context(col("request_id"), col("route"), col("request_body"), col("api"), col("metadata"),
                    col("prompt_tokens"))  # fmt: skip


def _taker(window: Window, rows: np.ndarray) -> Any:
    def take(name: str) -> list[Any]:
        return window.take(name, rows).to_pylist() if name in window.columns else [None] * len(rows)

    return take


def _context(rid: str, route: str, raw_body: Any, api: str | None, raw_meta: Any, prompt_tokens: Any) -> RouteContext:
    body = json_value(raw_body)
    if not isinstance(body, dict) or "unparsed" in body:
        body = None
    elif api == "anthropic":
        from ..proxy.anthropic_request import to_openai_request

        with contextlib.suppress(Exception):  # rejected live too: keep the raw body
            body = to_openai_request(body)
    if body is not None:
        body = {k: v for k, v in body.items() if k != "metadata"}
    metadata = json_value(raw_meta)
    return route_context(rid, route, body, metadata if isinstance(metadata, dict) else None, prompt_tokens)


def summarize_routing(policy: Policy, window: Window | Mapping[str, Any], decisions: Columns) -> dict[str, Any]:
    """``summary["routing"]``: shares of first targets (replayed and logged), changes, and the
    candidate's estimated cost, latency and error rates (:mod:`.routing_estimates`). Counts and
    shares are over client requests (checks of semantic hits left out); the estimates cover
    every upstream call, checks included (their cost is spend)."""
    attached = window.get("_routing")  # (decisions, the replay_plan column they produced)
    if isinstance(attached, tuple) and attached[1] is decisions["replay_plan"]:
        decided: RoutingDecisions = attached[0]
    else:  # columns that did not come from this window's stage (e.g. merged by the caller)
        decided = _recoded(decisions, len(decisions["replay_plan"]))
        decided.checks = check_rows(as_window(window))
    table, targets = decided.firsts()
    plan_codes = decided.plan_codes
    replayed, logged = decided.first_codes or (table[plan_codes], table[decided.logged_codes])
    if decided.checks is not None:  # a check of a semantic hit is a row, not a request
        plan_codes, replayed, logged = plan_codes[~decided.checks], replayed[~decided.checks], logged[~decided.checks]
    baseline = logged_cost(policy, window)
    return {
        "routing": {
            "estimates": estimate_coded(policy, window, decided.plan_codes, decided.plans),
            "logged_cost_at_candidate_prices_usd": baseline["cost_usd"],
            "logged_unpriced_targets": baseline["unpriced_targets"],
            "routed": int(np.count_nonzero(replayed >= 0)),
            "unknown_model": int(np.count_nonzero(plan_codes == decided._plan_index.get((), -2))),
            "first_target_share": _shares(replayed, targets),
            "logged_first_target_share": _shares(logged, targets),
            "first_target_changed": int(np.count_nonzero(replayed != logged)),
        },
    }


def _recoded(decisions: Columns, n: int) -> RoutingDecisions:
    """Decisions coded again from the stage's columns (when they did not come from this window)."""
    out = RoutingDecisions(n)
    for codes, plans in ((out.plan_codes, decisions["replay_plan"]), (out.logged_codes, decisions["logged_target"])):
        for i, p in enumerate(plans):
            if p is not None:
                codes[i] = out._intern_plan(tuple(p) if isinstance(p, list) else (p,))
    return out


def _shares(codes: np.ndarray, targets: list[str]) -> dict[str, float]:
    """Share of each target among the rows with one (code -1: none)."""
    counts = np.bincount(codes + 1, minlength=len(targets) + 1)[1:]  # code -1 counted apart
    n = int(counts.sum())
    return {t: round(int(c) / n, 6) for t, c in sorted(zip(targets, counts.tolist(), strict=True)) if c} if n else {}
