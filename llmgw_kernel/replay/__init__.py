"""Replay: fold a policy over a logged window of traffic.

>>> import tempfile
>>> from llmgw_kernel import load_policy, replay
>>> p = load_policy({"providers": {"d": {"kind": "demo"}},
...                  "routes": {"demo": {"targets": [{"provider": "d", "model": "echo"}]}}})
>>> result = replay(p, tempfile.mkdtemp())
>>> result.summary["requests"], result.compare_to_log()
(0, 0)

Each decision stage contributes columns to ``.decisions`` (one row per request, keyed by
``request_id``) and a count of rows whose replayed decision differs from the logged one.
Stages: routing (target order), limits, cache (exact and semantic outcome), cost, and
guardrails, which decides first: a request the candidate blocks on input is left out of the
other stages and merged back (``replay_served_by = 'blocked'``).
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..log.reader import open_log
from ..policy.load import PolicySource, load_policy

# The stages, the window (pyarrow) and the fold load when a replay runs, not when the package
# is imported: the live proxy imports ``replay.limits_stage`` to rebuild its state at start-up
# and must stay small (tests/dashboard: RSS after start).

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..policy.model import Policy
    from .costs import Estimates
    from .window import Window


class ReplayResult:
    """What a policy would have decided over a log window.

    ``decisions`` may be given as a function that builds the frame: it is then built when first
    read, once (:func:`replay` does so — a caller that reads only the summary never pays for a
    frame of a million rows)."""

    def __init__(
        self,
        policy: Policy,
        decisions: pd.DataFrame | Callable[[], pd.DataFrame],
        summary: dict[str, Any],
        differences: dict[str, int] | None = None,
    ) -> None:
        self.policy, self.summary = policy, summary
        self.differences: dict[str, int] = differences if differences is not None else {}
        self._decisions = decisions

    @property
    def decisions(self) -> pd.DataFrame:
        """One row per request (keyed by ``request_id``): each stage's logged and replayed columns."""
        if callable(self._decisions):
            self._decisions = self._decisions()
        return self._decisions

    def compare_to_log(self) -> int:
        """Requests whose replayed decisions differ from the logged live ones (any stage)."""
        counted = self.summary.get("differs_from_log", {}).get("any") if callable(self._decisions) else None
        if counted is not None:  # the frame's ``differs`` column, counted before it was built
            return int(counted)
        return int(self.decisions["differs"].sum()) if len(self.decisions) else 0

    def __repr__(self) -> str:
        return f"ReplayResult(policy {self.policy.version}, {self.summary.get('requests')} requests)"


def replay(
    policy: PolicySource,
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    where: str | None = None,
    params: Any = (),
    versions: Mapping[str, PolicySource] | None = None,
    estimates: Estimates | None = None,
) -> ReplayResult:
    """Replay ``policy`` over the requests logged in ``[since, until)`` (UTC).

    ``log`` is a connection from :func:`open_log` or a data directory. ``where`` (with
    ``params``) restricts the replay to the rows matching an SQL predicate over the
    ``requests`` view, warm-up rows included (a partition of a partitioned replay).
    ``versions`` maps policy versions to policies: each request is then decided by the
    version that served it when that version is given (else by ``policy``), so a window that
    spans policy reloads replays as it was served (see ``llmgw_kernel.replay.versions``).
    ``estimates`` (:func:`.costs.estimates_of` of a wider window) replaces the statistics the
    candidate's estimates are made from (a partition of a partitioned replay gets the whole
    window's, so its estimates equal the single replay's).
    """
    import numpy as np
    import pandas as pd

    pol = load_policy(policy)
    opened = not hasattr(log, "execute")  # a data directory: the connection is ours to close
    con: Any = open_log(log) if opened else log  # type: ignore[arg-type]
    from .columns import to_pandas
    from .guardrails_stage import GUARDRAIL_COLUMNS, blocked_summary, guardrail_decisions, merged_back, without_blocked
    from .stages import REPLAY_COLUMNS, STAGES, decide
    from .window import LOG_COLUMNS, load_window

    # the logged verdicts in the same scan: the guardrails stage reads them (mostly NULL) in every replay
    window = load_window(con, since, until, where, params, (*LOG_COLUMNS, *GUARDRAIL_COLUMNS),
                         (*REPLAY_COLUMNS, "guardrails"))  # fmt: skip
    by_version = {v: load_policy(p) for v, p in versions.items()} if versions else None
    # guardrails decide first: a request the candidate blocks on input reaches no other stage
    rails = guardrail_decisions(pol, window, by_version)
    kept = without_blocked(con, since, until, where, params, window, rails, load_window)
    history, start, warm = _state_before(pol, con, kept, since, where, params)
    decided = decide(pol, kept, history, start, warm, versions=by_version, estimates=estimates)
    _release_arrow_memory()  # the deciding's temporaries
    n = len(window)
    # held as Arrow until the frame is built (no Python str per request id for a caller that reads the summary)
    columns: dict[str, Any] = {k: window.arrow(k) for k in ("request_id", "ts", "route")}
    kept_columns: dict[str, Any] = {}  # as decided over ``kept`` (what those stages' summaries read)
    differs = np.zeros(n, bool)
    differences: dict[str, int] = {}
    from .fold_columns import checks

    # a check of a semantic hit (endpoint cache.check) is a row, not a request: its cost is in checks_usd
    summary: dict[str, Any] = {"policy_version": pol.version, "requests": n - int(np.count_nonzero(checks(window)))}
    for stage in STAGES:
        cols, diff = stage.columns(pol, window if stage.whole_window else kept, decided)
        if not stage.whole_window:
            kept_columns.update(cols)
            if kept is not window:
                cols, diff = merged_back(cols, diff, window, rails)
        columns.update(cols)
        if diff is not None:
            flags = np.asarray(diff, bool)
            differences[stage.name] = int(np.count_nonzero(flags))
            differs |= flags
    for stage in STAGES:
        on = (window, columns) if stage.whole_window else (kept, kept_columns)
        summary.update(stage.summarize(pol, on[0], on[1], decided))
    blocked_summary(summary, window, rails)
    columns["differs"] = differs
    summary["differs_from_log"] = {**differences, "any": int(np.count_nonzero(differs))}
    summary.update(_observed(window))
    # the frame is built without the window: free the log's columns (and the connection opened
    # here) first, so their memory is reused instead of adding to the peak
    del window, kept, decided, warm, start
    if opened:
        con.close()
    _release_arrow_memory()

    def frame() -> pd.DataFrame:
        return pd.DataFrame({k: to_pandas(v) for k, v in columns.items()}).set_index("request_id", drop=False)

    return ReplayResult(pol, frame, summary, differences)


def _release_arrow_memory() -> None:
    """Return the memory Arrow has freed to the system (its allocator keeps it otherwise, and
    numpy and pandas, which allocate elsewhere, could not reuse it)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    pa.default_memory_pool().release_unused()


def _state_before(
    pol: Policy, con: Any, window: dict[str, Any], since: Any, where: str | None = None, params: Any = ()
) -> tuple[Any, Any, Any]:
    """What the replay starts from: the key history (versions of key settings), and when the
    window starts at ``since``, the admission state and the cached answers the log says the
    live proxy held then (see :mod:`.fold`)."""
    from ..decisions.cache import longest_ttl
    from ..keys.store import KeyHistory
    from ..log.reader import data_dir_of
    from .limits_stage import limits_at

    root = data_dir_of(con)
    history = KeyHistory.load(root) if root is not None else None
    if since is None or not len(window):
        return history, None, None
    # the state at ``since`` itself (not at the window's first row: a partition of the window
    # must start from the same moment as the whole)
    at = float(con.execute("SELECT epoch(CAST(? AS TIMESTAMPTZ))", [since]).fetchall()[0][0])
    start = limits_at(pol, con, history, at, until=at, where=where, params=params)
    ttl = longest_ttl(pol)
    if ttl <= 0:
        return history, start, None
    from datetime import UTC, datetime

    cond = "cache_stored_ts IS NOT NULL AND cache_stored_ts > ?"
    from .window import load_window

    warm = load_window(
        con, datetime.fromtimestamp(at - ttl, UTC), datetime.fromtimestamp(at, UTC),
        f"{cond} AND ({where})" if where else cond, [at - ttl, *params],
    )  # fmt: skip
    return history, start, warm


def _observed(window: Window) -> dict[str, Any]:
    """What the log itself says about the window (the baseline a replay is read against)."""
    import numpy as np

    from .routing_estimates import quantiles

    n = len(window)
    if not n:
        return {"window": None, "logged": {}}
    codes, outcomes = window.codes("outcome")
    ok = codes == outcomes.index("ok") if "ok" in outcomes else np.zeros(n, bool)
    lat = window.numpy("latency_ms")[ok & window.valid("latency_ms")]
    ts = window.arrow("ts")  # window order is time order
    n_ok = int(np.count_nonzero(ok))
    p50, p95 = quantiles(lat, (0.5, 0.95))  # one partial sort
    return {
        "window": {"since": str(ts[0].as_py()), "until": str(ts[len(ts) - 1].as_py())},
        "logged": {
            "ok": n_ok,
            "errors": n - n_ok,
            "error_rate": round((n - n_ok) / n, 6),
            "latency_ms_p50": p50,
            "latency_ms_p95": p95,
            "prompt_tokens": _total(window, "prompt_tokens"),
            "completion_tokens": _total(window, "completion_tokens"),
            "policy_versions": sorted(v for v in window.codes("policy_version")[1] if v),
        },
    }


def _total(window: Window, name: str) -> int:
    """The sum of an integer column, NULL as 0."""
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    total = pc.sum(window.arrow(name)).as_py()
    return int(total or 0)


class _CallablePackage(types.ModuleType):
    """``llmgw_kernel.replay`` names both this package and its main function. Importing a
    submodule first (``from llmgw_kernel.replay.whatif import ...``) binds the *package* to
    ``llmgw_kernel.replay``, hiding the lazily exported function; calling the package calls
    :func:`replay`, so ``gw.replay(policy, log)`` works in either order."""

    def __call__(self, *args: Any, **kwargs: Any) -> ReplayResult:
        return replay(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage


if TYPE_CHECKING:
    from .window import load_window
else:

    def load_window(*args, **kwargs):
        """:func:`llmgw_kernel.replay.window.load_window` (loaded when first called: pyarrow)."""
        from .window import load_window as load

        return load(*args, **kwargs)


__all__ = ["ReplayResult", "load_window", "replay"]
