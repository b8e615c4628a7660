"""Budgets and rate limits in replay: the figures of the admission decisions that the composed
fold (:mod:`.fold`) made, and the admission state the log says the live proxy held at a moment.

The fold decides each routed request at its logged ``admitted_ts`` (or its arrival, when the
live policy applied no limit), with the key settings in force then (the logged
``key_version`` of the key history), reserving the candidate's worst case on the candidate's
targets; it settles at its logged ``settled_ts`` (else ``ts_end``) at the cost the candidate
would have paid (0 for a cache hit). So the live policy reproduces every live admission, and a
candidate's budgets, rate limits, routes and caches say together which requests it would have
refused, when each team would have run out, and how much spend that prevents.

Spend is tracked per calendar window, so a replay of ``[since, until)`` starts from the state
:func:`limits_at` reads from the log at ``since``: the spend of every window that contains
``since`` (a month, or the week before it) and the last minute's admissions — what the live
proxy held, as if the candidate were promoted at ``since``. Requests in flight at ``since``
count as settled then (their reservations are not held).

The live proxy's state at start-up is the same reading (:func:`rebuild_from_log`): it sums
the logged costs and counts the last minute's logged admissions, without deciding anything again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING, Any

from ..decisions.cost import MAX_COST_USD, real_cost_sql
from ..decisions.limits import (
    NANO,
    RATE_WINDOW_S,
    Limits,
    Subject,
    applicable_rates,
    budget_timezone,
    rate_buckets_of,
    utc,
    window_bounds,
)
from .columns import epoch

log = logging.getLogger("llmgw.replay")

if TYPE_CHECKING:
    from ..keys.store import KeyHistory
    from ..policy.model import Policy

Columns = dict[str, list[Any]]


def summarize_limits(policy: Policy, window: Columns, decisions: Columns, codes: Any = None) -> dict[str, Any]:
    """``summary["limits"]``: refusals per kind, newly refused and admitted, the spend refusals
    prevent, and each limit's cut-off (its first refusal) — by column (``decisions`` holds lists
    or object arrays), over admission codes (:data:`.fates.ADMISSION`; ``codes``: the replayed
    admission's, e.g. the fold's own, else ``decisions["replay_admission"]`` coded once)."""
    import numpy as np

    from .fates import ADMISSION, encode, logged_codes
    from .window import Window

    ok = ADMISSION.index("ok")
    replayed = encode(_objects(decisions["replay_admission"]), ADMISSION) if codes is None else codes
    m = len(replayed)
    if isinstance(window, Window):
        logged = logged_codes(window, "admission", ADMISSION)[:m]
    else:
        logged = encode(_objects(window["admission"]), ADMISSION)[:m]
    live_ok = (logged == 0) | (logged == ok)
    refused = (replayed != 0) & (replayed != ok)
    rows = np.flatnonzero(refused)
    cost = _window_floats(window, "cost_usd")[:m]
    newly = refused & live_ok
    prevented = float(np.cumsum(np.nan_to_num(cost[newly]))[-1]) if newly.any() else 0.0  # in row order
    limit = _objects(decisions["replay_admission_limit"])[rows]
    kinds = np.array([*ADMISSION, None], object)[replayed[rows]]  # -1 (a value of no label): None
    named = np.where(limit == None, kinds, limit)  # noqa: E711
    at = _window_epoch(window)[rows]
    return {
        "limits": {
            "evaluated": int(np.count_nonzero(replayed)),
            "refused": len(rows),
            "budget_exceeded": int(np.count_nonzero(replayed == ADMISSION.index("budget_exceeded"))),
            "rate_limited": int(np.count_nonzero(replayed == ADMISSION.index("rate_limited"))),
            "newly_refused": int(np.count_nonzero(newly)),
            "newly_admitted": int(np.count_nonzero((replayed == ok) & ~live_ok)),
            "spend_prevented_usd": round(prevented, 6),
            "cutoffs": _cutoffs(named, kinds, at),
        }
    }


def _cutoffs(named: Any, kinds: Any, at: Any) -> list[dict[str, Any]]:
    """Each refusing limit's cut-off — its kind (of its first refusal in row order), first refusal
    time and refusals — from the refused rows' limit names, kinds and times (arrays), by code:
    a window refuses up to all its rows, and few limits refuse."""
    import numpy as np
    import pandas as pd

    if not len(named):
        return []
    code, names = pd.factorize(named)  # in order of first appearance
    first_row = np.full(len(names), len(code), np.int64)
    np.minimum.at(first_row, code, np.arange(len(code)))
    first_at = np.full(len(names), np.inf)
    np.minimum.at(first_at, code, at)
    counts = np.bincount(code, minlength=len(names))
    cutoffs = [
        {"limit": name, "kind": kinds[first_row[k]], "first_refused_at": utc(float(first_at[k])),
         "refused": int(counts[k])}
        for k, name in enumerate(names.tolist())
    ]  # fmt: skip
    return sorted(cutoffs, key=lambda c: c["first_refused_at"])


def _objects(values: Any) -> Any:
    """A column (list or array) as a 1-D object array."""
    import numpy as np

    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    out = np.empty(len(values), object)
    out[:] = list(values) if not isinstance(values, list) else values
    return out


def _window_floats(window: Columns, name: str) -> Any:
    import numpy as np

    from .window import Window

    if isinstance(window, Window):
        return window.numpy(name)
    return np.array([np.nan if v is None else v for v in window[name]], np.float64)


def _window_epoch(window: Columns) -> Any:
    import numpy as np

    from .window import Window

    if isinstance(window, Window):
        return window.epoch("ts")
    return np.array([epoch(t) for t in window["ts"]], np.float64)


def warmup_since(policy: Policy, since: float) -> float:
    """Where the log must be folded from for the state at ``since`` to be complete."""
    tz = budget_timezone(policy)
    return min(window_bounds(since, w, tz)[0].timestamp() for w in ("week", "month"))


# Spend is summed per subject and quarter hour: every time zone's midnight falls on one, so a
# group lies inside one day, week and month whatever the policy's time zone.
_SPEND_SLOT_S = 900


def rebuild_from_log(
    policy: Policy, data_dir: str | os.PathLike[str], history: KeyHistory | None, now: float | None = None,
    counting: Counting | None = None, settled_by: float | None = None,
) -> Limits:  # fmt: skip
    """The live state at start-up, from what the log says happened (no admission is re-run):

    - spend: every logged ``cost_usd``, in the windows of its admission (or arrival), for the
      scopes and windows live admission counts (``counting``: :func:`live_counting`'s pairs and
      named subjects, and the key ids counted; None: all) — refused requests cost nothing, and
      a row without a settled cost adds nothing;
    - rate windows: the admissions (``admission = 'ok'``) and settled tokens of the last minute,
      counted in the windows of the limits that apply to them now;
    - nothing in flight: a reservation lives only as long as the process that holds it.

    ``settled_by`` (a reload seeding the pairs it adds: docs/budgets.md) keeps only the spend
    settled by then — ``settled_ts``, or the row's end for a cost no limit tracked — and no
    rate window.
    """
    import time

    from ..log.reader import open_log

    now = time.time() if now is None else now
    try:
        con = open_log(data_dir)
    except Exception:
        return _counting(Limits(timezone=budget_timezone(policy)), counting)
    where: str | None = None
    params: tuple[float, ...] = ()
    if settled_by is not None:
        where, params = _SETTLED_BY, (settled_by,)
    try:
        limits = limits_at(policy, con, history, now, where=where, params=params, counting=counting)
        if settled_by is not None:
            limits.windows.clear()
        return limits
    finally:
        con.close()


#: the (scope, window) pairs counted for every subject, the named subjects' windows, the key ids
Counting = tuple[frozenset[tuple[str, str]], Mapping[tuple[str, str], frozenset[str]], Container[str] | None]
#: a row whose spend was committed by ``?``: settled then (an admitted request), or, for a cost no
#: limit tracked (committed as the request finished, then logged), the row ended then
_SETTLED_BY = "coalesce(settled_ts, epoch(coalesce(ts_end, ts))) <= ?"


def _counting(limits: Limits, counting: Counting | None) -> Limits:
    if counting is not None:
        limits.counted, limits.named, limits.keys = counting
    return limits


def limits_at(
    policy: Policy, con: Any, history: KeyHistory | None, at: float, until: float | None = None,
    where: str | None = None, params: Any = (), counting: Counting | None = None,
) -> Limits:  # fmt: skip
    """The admission state at ``at`` as the log tells it (see :func:`rebuild_from_log`): what
    the live proxy held then, for a restart or for a replay that starts at ``at``. Rows at or
    after ``until`` are left out (a replay's window); ``where``/``params`` select a subset."""
    limits = _counting(Limits(timezone=budget_timezone(policy)), counting)
    present = {r[0] for r in con.execute("DESCRIBE requests").fetchall()}
    if "cost_usd" not in present:
        return limits
    extra, bound = "", []
    if until is not None:
        extra, bound = " AND ts < to_timestamp(?)", [until]
    if where:
        extra, bound = extra + f" AND ({where})", [*bound, *params]
    when = "coalesce(admitted_ts, epoch(ts))" if "admitted_ts" in present else "epoch(ts)"
    spend = con.execute(
        f"SELECT key_id, team, end_user, floor({when} / {_SPEND_SLOT_S}) AS slot,"
        f" sum(CAST(round(cost_usd * {NANO}) AS BIGINT)) FROM requests"
        f" WHERE ts >= to_timestamp(?) AND cost_usd <> 0 AND {real_cost_sql('cost_usd')}{extra}"
        " GROUP BY ALL ORDER BY slot",
        [warmup_since(policy, at), *bound],
    ).fetchall()  # fmt: skip
    _warn_unreal_costs(con, warmup_since(policy, at), extra, bound)
    recent = _recent_admissions(con, present, at - RATE_WINDOW_S - 1, extra, bound)
    for key_id, team, user, slot, amount in spend:  # whole nano-dollars: the sum's order cannot matter
        limits.commit_nano(Subject(key_id, team, user, ""), slot * _SPEND_SLOT_S, int(amount))
    _rebuild_rates(policy, limits, recent, history, at - RATE_WINDOW_S - 1)
    return limits


def _warn_unreal_costs(con: Any, since: float, extra: str, bound: list[Any]) -> None:
    """Say how many logged costs the spend leaves out: not finite, or beyond
    :data:`~llmgw_kernel.decisions.cost.MAX_COST_USD` (an import before costs were bounded)."""
    (count,) = con.execute(
        f"SELECT count(*) FROM requests WHERE ts >= to_timestamp(?) AND NOT {real_cost_sql('cost_usd')}{extra}",
        [since, *bound],
    ).fetchone()
    if count:
        log.warning(
            "%d logged cost(s) are no request's (not finite, or above USD %.4g): left out of spend", count, MAX_COST_USD
        )


def _recent_admissions(con: Any, present: set[str], since: float, extra: str, bound: list[Any]) -> list[tuple]:
    if not {"admission", "admitted_ts", "settled_ts", "key_version"} <= present:
        return []
    return con.execute(
        "SELECT key_id, key_version, team, end_user, route, admitted_ts, settled_ts,"
        " coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0) FROM requests"
        f" WHERE admission = 'ok' AND (admitted_ts >= ? OR settled_ts >= ?){extra}",
        [since, since, *bound],
    ).fetchall()


def _rebuild_rates(policy: Policy, limits: Limits, rows: list[tuple], history: KeyHistory | None, since: float) -> None:
    """Count the recent admissions and settled tokens in the rate windows, in time order."""
    events: list[tuple[float, int, int, list[tuple]]] = []
    for key_id, key_version, team, user, route, admitted, settled, tokens in rows:
        key = history.version(key_id, key_version) if history is not None and key_version else None
        subject = Subject(key_id, team, user, route or "")
        buckets = rate_buckets_of(applicable_rates(policy, key, subject))
        if not buckets:
            continue
        if admitted is not None and admitted >= since:
            events.append((admitted, 1, 0, buckets))
        if settled is not None and settled >= since:
            events.append((settled, 0, tokens, buckets))
    events.sort(key=lambda e: e[0])
    for at, requests, tokens, buckets in events:
        limits.record(buckets, at, requests, tokens)
