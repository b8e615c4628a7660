"""Partitioned replay: :func:`~llmgw_kernel.replay` run on each partition of the window
(:mod:`.partition`) by local processes or a distributed engine, merged into the result the
single-process replay returns (docs/replay-distributed.md).

Engines: ``local`` (a ``ProcessPoolExecutor`` of spawned processes on this machine's cores),
``dask`` (a ``dask.distributed`` client: the one passed in, else a local cluster of one
single-threaded worker process per partition) and ``ray`` (``ray.init`` on this machine unless
Ray is already initialised, e.g. connected to a cluster). Every worker opens the source
itself (:class:`~.sources.Source`: a path or object-store URL), so the log never travels
through the driver; a task carries the policy, the window bounds and its request ids.

The merge:

- ``.decisions``: the partitions' rows, ordered as the single-process replay orders them
  (``ts``, then ``request_id``), one row per request, the same columns and dtypes;
- ``.differences`` and ``summary["differs_from_log"]``: per-stage counts summed, ``any``
  recounted from the merged ``differs``;
- every other ``.summary`` figure is recomputed in the driver by the stages' own summary
  functions over the merged decisions and the logged window *without* its two bulky
  columns (``request_body``, ``embedding``: no summary reads them) — shares, quantiles,
  estimates, cut-offs and the logged baseline are whole-window figures, not sums of the
  partitions'. So the driver reads the window's narrow columns once; only the per-request
  folds (routing, admission, cache stores) are distributed;
- ``summary["partitioning"]``: the plan (engine, partitions, couplings, why fewer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ..policy.load import PolicySource, load_policy
from ..policy.model import Policy
from .costs import ESTIMATE_COLUMNS, Estimates, estimates_of
from .partition import PartitionPlan, plan_partitions, predicate
from .sources import Source
from .window import load_window

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa  # type: ignore[import-untyped]

    from . import ReplayResult

Engine = Literal["local", "dask", "ray"]
ENGINES: tuple[str, ...] = ("local", "dask", "ray")


@dataclass(frozen=True)
class Task:
    """One partition's work: everything a worker needs, picklable."""

    policy: PolicySource
    source: Source
    since: datetime | str | None
    until: datetime | str | None
    ids: pa.Table
    estimates: Estimates | None = None  # the whole window's: every partition estimates alike


@dataclass
class Part:
    """What a worker sends back: its replay's decisions, summary and per-stage counts."""

    decisions: pd.DataFrame
    summary: dict[str, Any]
    differences: dict[str, int]


def run_partition(task: Task) -> Part:
    """Replay one partition (in a worker process)."""
    from . import replay

    con = task.source.open()
    try:
        result = replay(
            task.policy, con, task.since, task.until, where=predicate(con, task.ids), estimates=task.estimates
        )
    finally:
        con.close()
    return Part(result.decisions, result.summary, dict(result.differences))


def replay_partitioned(
    policy: PolicySource,
    source: Source | str | os.PathLike[str],
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    engine: Engine = "local",
    partitions: int | None = None,
    storage_options: dict[str, Any] | None = None,
    key_history: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> ReplayResult:
    """Replay ``policy`` over ``source`` in ``[since, until)`` in ``partitions`` independent
    parts (default: the machine's cores) on ``engine``; the same result as
    ``replay(policy, open_source(source), since, until)``.

    ``source``: a data directory, a directory of Parquet files or an object-store URL
    (:mod:`.sources`, with ``storage_options`` and ``key_history``). ``client``: a
    ``dask.distributed.Client`` to run on (dask only)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    kh = os.fspath(key_history) if key_history is not None else None
    src = Source.of(source, storage_options=dict(storage_options or {}), key_history=kh)
    pol = load_policy(policy)
    # a path or a mapping travels as it is (a worker loads it, rule functions included)
    shipped: PolicySource = pol if isinstance(policy, Policy) else policy
    con = src.open()
    try:
        # the statistics a candidate's estimates are made from, of the whole window: with them
        # a partition estimates exactly as the single replay does, so only state couples rows
        est = estimates_of(load_window(con, since, until, columns=ESTIMATE_COLUMNS))
        plan = plan_partitions(
            pol, con, since, until, partitions or os.cpu_count() or 1, _history(con), shared_estimates=True
        )
        tasks = [Task(shipped, src, since, until, plan.ids(p), est) for p in range(plan.partitions)]
        parts = _run(engine, tasks, client)
        return _merge(pol, parts, plan, engine)
    finally:
        con.close()


def _history(con: duckdb.DuckDBPyConnection) -> Any:
    from ..keys.store import KeyHistory
    from ..log.reader import data_dir_of

    root = data_dir_of(con)
    return KeyHistory.load(root) if root is not None else None


def _run(engine: str, tasks: list[Task], client: Any) -> list[Part]:
    if engine == "dask":
        return _run_dask(tasks, client)
    if engine == "ray":
        return _run_ray(tasks)
    if len(tasks) == 1:
        return [run_partition(tasks[0])]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a forked child would inherit the driver's DuckDB threads and locks
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(len(tasks), os.cpu_count() or 1), mp_context=ctx) as pool:
        return list(pool.map(run_partition, tasks))


def _run_dask(tasks: list[Task], client: Any) -> list[Part]:
    from distributed import Client, LocalCluster

    if client is not None:
        return list(client.gather(client.map(run_partition, tasks, pure=False)))
    workers = min(len(tasks), os.cpu_count() or 1)
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as own,
    ):
        return list(own.gather(own.map(run_partition, tasks, pure=False)))


def _run_ray(tasks: list[Task]) -> list[Part]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=min(len(tasks), os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(run_partition)
        return list(ray.get([remote.remote(t) for t in tasks]))
    finally:
        if started:
            ray.shutdown()


def _merge(pol: Any, parts: list[Part], plan: PartitionPlan, engine: str) -> ReplayResult:
    from . import ReplayResult
    from .merge import merge_decisions, merge_summaries

    decisions = merge_decisions([p.decisions for p in parts])
    differences: dict[str, int] = {}
    for p in parts:
        for stage, n in p.differences.items():
            differences[stage] = differences.get(stage, 0) + n
    if len(parts) == 1:
        summary, not_merged = dict(parts[0].summary), list[str]()
    else:
        summary, not_merged = merge_summaries([p.summary for p in parts], decisions)
    summary["partitioning"] = {"engine": engine, **plan.describe(), "not_merged": not_merged}
    return ReplayResult(pol, decisions, summary, differences)
