"""Semantic replay at scale: CPU, requests/s per core and peak memory of one semantic-cache
replay and of a 10-threshold sweep, over a synthetic log with embeddings.

    .venv/bin/python benchmarks/replay_semantic_scale.py                   # 1,000,000 rows, 3 runs each
    .venv/bin/python benchmarks/replay_semantic_scale.py --rows 100000 --runs 3
    .venv/bin/python benchmarks/replay_semantic_scale.py --rows 100000 --profile --scenario sweep
    .venv/bin/python benchmarks/replay_semantic_scale.py --gen-version 1 --alternate   # the v1 log, alternating

**The log**: :mod:`llmgw_kernel.cache.synthetic_log` — written through the real ``LogWriter``,
its cache fields decided by the live cache's decision core, 384-d synthetic embeddings
(clustered unit vectors, deterministic from the seed; no model), real prompt texts for
verification; the demo traffic profile drawn in bulk (its four teams, their keys and users,
hours, Zipf-popular prompts with repeats and paraphrases) at 60 requests/s, three routes (two
cached: exact + semantic at threshold 0.90), 64 keys, 4 system prompts, no budgets or rate
limits. Generated once into ``--cache-dir`` (default ``/tmp/llmgw-semantic-scale``, a folder
per row count and :data:`GEN_VERSION`) and reused.

**Scenarios**, each in a fresh subprocess (CPU = user + sys of the child, all threads,
interpreter and imports included; peak = the child's ``ru_maxrss``):

- ``replay``: ``replay(policy-live.yaml, dir)`` — every stage, the semantic cache searched
  through the live ``SemanticStore``; checks 0 differences from the log;
- ``sweep``: ``sweep_semantic_threshold`` over 10 thresholds (0.80, 0.82, ..., 0.98), no
  label-free estimate (that loads the model).

``--limits``: both replay the candidate :func:`limits_policy` instead (the live policy plus a daily
budget per team that runs out within the log, and rpm/tpm limits per key): admission then depends
on the cache (a hit spends nothing and counts no tokens), so the sweep folds the whole composed
replay at each threshold.

"Before" numbers: run the script with ``PYTHONPATH=<worktree of another commit>`` (the
package is installed editable; the children then import that checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from child_runs import run_child, spread  # benchmarks/ is the script's folder
from replay_scale import cached_log

#: bump when the traffic changes: the cached log is regenerated in a folder of its own
#: (2: the traffic profile's teams, keys, users, hours, routes and prompts)
GEN_VERSION = 2
THRESHOLDS = tuple(round(0.80 + 0.02 * i, 2) for i in range(10))


def ensure_log(cache_dir: Path, rows: int, version: int = GEN_VERSION) -> Path:
    """The data directory holding a log of ``rows`` requests (generated once, then reused; written
    aside and renamed into place when complete, as ``replay_scale.cached_log`` does). ``version``:
    an older generation's folder, measured as it is (never regenerated: its generator is gone)."""

    def write(data_dir: Path) -> None:
        from llmgw_kernel.cache.synthetic_log import generate  # not needed to measure an older checkout

        generate(data_dir, rows)

    folder = cache_dir / f"rows-{rows}-v{version}"
    if version != GEN_VERSION and not (folder / "complete.json").exists():
        raise SystemExit(f"{folder}: no complete log of generation {version} (only {GEN_VERSION} is generated)")
    return cached_log(folder, write)


# -- measurement -----------------------------------------------------------------------------
SCENARIOS = ("replay", "sweep")
LIMITS = "-limits"  # a child's scenario with this suffix replays limits_policy()
#: the --limits candidate: per team a daily budget of this many dollars per million rows of the log
#: (the v1 log's teams spend $110-180 per million rows: each runs out), and per key rpm and tpm
BUDGET_PER_1M_USD = 100.0
KEY_RPM, KEY_TPM = 240, 150_000


def limits_policy(data_dir: Path) -> Path:
    """The log's live policy with budgets and rate limits (written beside it once; the same bytes
    every time, so runs replay one candidate)."""
    import yaml

    rows = json.loads((data_dir / "complete.json").read_text())["rows"]
    doc = yaml.safe_load((data_dir / "policy-live.yaml").read_text())
    doc["budgets"] = {"limits": [{"scope": "team", "usd": BUDGET_PER_1M_USD * rows / 1e6, "window": "day"}]}
    doc["rate_limits"] = [{"scope": "key", "rpm": KEY_RPM, "tpm": KEY_TPM}]
    path = data_dir / "policy-limits.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def child(scenario: str, data_dir: Path, out: Path) -> None:
    """Run one scenario in this (fresh) process and write what it produced to ``out``."""
    policy = limits_policy(data_dir) if scenario.endswith(LIMITS) else data_dir / "policy-live.yaml"
    scenario = scenario.removesuffix(LIMITS)
    if scenario == "replay":
        from llmgw_kernel import replay

        result = replay(policy, str(data_dir))
        cache = result.summary["cache"]
        facts = {"requests": result.summary["requests"], "differs": result.summary["differs_from_log"],
                 "hits": [cache["exact_hits"], cache["semantic_hits"]],
                 "refused": result.summary["outcome"]["refused"]}  # fmt: skip
    else:
        from llmgw_kernel.replay.cache_sweep import sweep_semantic_threshold

        table = sweep_semantic_threshold(policy, str(data_dir), THRESHOLDS, estimate=False)
        hits = zip(table["exact_hits"], table["semantic_hits"], strict=True)
        facts = {"requests": int(table["considered"].max()) if len(table) else 0,
                 "hits": [[int(e), int(s)] for e, s in hits]}  # fmt: skip
        from llmgw_kernel.log.reader import open_log

        con = open_log(str(data_dir))
        facts["requests"] = int(con.execute("SELECT count(*) FROM requests").fetchall()[0][0])
    out.write_text(json.dumps(facts, default=str))


def measure(scenario: str, data_dir: Path, profile: bool = False, limits: bool = False) -> dict[str, Any]:
    """One run in a fresh subprocess: CPU s (user + sys), peak RSS, wall, and what it replayed."""
    run = run_child(__file__, scenario + (LIMITS if limits else ""), data_dir, profile, top=35)
    return {**run, "req_s_core": run["requests"] / run["cpu_s"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenario", choices=SCENARIOS, action="append", help="default: both")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmgw-semantic-scale")
    ap.add_argument("--alternate", action="store_true", help="replay, sweep, replay, ... (not all runs of one first)")
    ap.add_argument("--profile", action="store_true", help="one profiled run per scenario: top functions")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument(
        "--gen-version",
        type=int,
        default=GEN_VERSION,
        help="measure the cached log of an older generation (e.g. 1: the log the 2026-12-05 figures use)",
    )
    ap.add_argument("--limits", action="store_true", help="replay a candidate with budgets and rpm/tpm limits")
    ap.add_argument("--child", choices=[*SCENARIOS, *(s + LIMITS for s in SCENARIOS)], help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.data_dir, args.out)
        return
    data_dir = ensure_log(args.cache_dir, args.rows, args.gen_version)
    if args.generate_only:
        print(data_dir)
        return
    print(f"log: {data_dir} ({args.rows:,} rows); load average {os.getloadavg()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    if args.limits:
        print(f"candidate: {limits_policy(data_dir)} (budgets and rpm/tpm limits)")
    medians: dict[str, float] = {}
    scenarios = args.scenario or list(SCENARIOS)
    if args.profile:
        for scenario in scenarios:
            print(json.dumps(measure(scenario, data_dir, profile=True, limits=args.limits), default=str))
        return
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    rounds = range(args.runs)
    plan = [s for _ in rounds for s in scenarios] if args.alternate else [s for s in scenarios for _ in rounds]
    for scenario in plan:  # each run's own line as it ends (a long series under load: what is done is kept)
        run = measure(scenario, data_dir, limits=args.limits)
        runs[scenario].append(run)
        line = f"  {scenario} run {len(runs[scenario])}: CPU s {run['cpu_s']:.2f} | peak RSS MB {run['rss_mb']:,.0f}"
        print(
            f"{line} | wall s {run['wall_s']:.2f} | load {os.getloadavg()[0]:.1f} | hits {run.get('hits')}"
            f"{' | refused ' + str(run['refused']) if 'refused' in run else ''}",
            flush=True,
        )
    for scenario in scenarios:
        got = runs[scenario]
        medians[scenario] = statistics.median(r["cpu_s"] for r in got)
        print(
            f"{scenario:>7}: CPU s {spread([r['cpu_s'] for r in got], '{:.2f}')}"
            f" | req/s/core {spread([r['req_s_core'] for r in got], '{:,.0f}')}"
            f" | peak RSS MB {spread([r['rss_mb'] for r in got], '{:,.0f}')}"
            f" | wall s {spread([r['wall_s'] for r in got], '{:.2f}')}"
            f" | differs {got[0].get('differs')} | hits {got[0].get('hits')}  (min / median / max of {len(got)})",
            flush=True,
        )
    if "replay" in medians and "sweep" in medians:
        print(f"sweep / replay (median CPU): {medians['sweep'] / medians['replay']:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
