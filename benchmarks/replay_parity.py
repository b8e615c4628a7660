"""Parity at scale: seeded all-stages traffic through a real ``llmgw serve``, then the live
policy replays its own log; every stage must differ on 0 requests.

    .venv/bin/python benchmarks/replay_parity.py [--requests 20000] [--seed 1] [--concurrency 8]
        [--reload] [--restart] [--semantic] [--replays 3] [--keep DIR]

The traffic is ``tests/parity_traffic.py`` (the parity tests' generator): enforced virtual
keys, team/user/key budgets that run out part-way, rpm/tpm limits, weighted routes with
fallbacks, a route with rules, the exact cache (``--semantic``: and the semantic one),
upstream faults from the fake OpenAI server, streams finished/cut/abandoned,
``/v1/messages``, embeddings, unknown models, malformed bodies, bad/revoked keys; a third of
the way in a key is revoked and another changes. ``--reload`` then promotes a new version under
traffic (weights, a rule, a rate limit and a budget change) and replays with
``versions=served_policies(live)``: each row under the version that served it; ``--restart``
restarts the server on its data directory two thirds in.

Reported (JSON on stdout): the mix's outcomes as logged, ``differs_from_log`` per stage and
``compare_to_log()`` (with the first differing rows when any), and the replay's cost,
measured ``--replays`` times in a fresh process each (CPU seconds = utime + stime of that
process, req/s per core = requests / CPU s, peak RSS = its ru_maxrss) with their spread.
Bounded: ``--requests`` requests, one pass; the server is stopped (SIGTERM) before replay; the
temporary directory is removed at the end (``--keep DIR`` keeps the log to look at).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def serve_traffic(out: Path, requests: int, seed: int, concurrency: int, reload: bool, semantic: bool,
                  restart: bool = False) -> dict:  # fmt: skip
    """Run the mix through a real server in ``out``; what the client side saw."""
    from conftest import UPSTREAM_KEY
    from fake_openai import FakeOpenAI
    from parity_traffic import ParityRun, reloaded_policy, request_mix
    from procstat import cpu_seconds

    fake = FakeOpenAI(api_key=UPSTREAM_KEY).start()
    try:
        run = ParityRun.start(out, fake.base_url, requests, semantic=semantic)
        if semantic:
            _wait_model(run)
        t0, cpu0 = time.monotonic(), cpu_seconds(run.gw.proc.pid)
        pid = run.gw.proc.pid
        new_version = reloaded_policy(run.doc, limits=True) if reload else None
        run.play(request_mix(seed, requests), concurrency, new_version, restart)
        wall = time.monotonic() - t0
        server_cpu = None if restart else round(cpu_seconds(pid) - cpu0, 1)  # (a restarted one's is gone)
        assert run.stop() == 0, run.gw.server_log()[-3000:]
    finally:
        fake.stop()
    return {
        "requests": len(run.results), "wall_s": round(wall, 1), "server_cpu_s": server_cpu,
        "versions": run.versions, "policy": str(run.gw.policy_path), "data_dir": str(run.gw.data_dir),
    }  # fmt: skip


def _wait_model(run: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while set(run.health()["cache"]["models"].values()) != {"ready"}:
        if time.monotonic() > deadline:
            raise SystemExit(f"embedding model not ready: {run.health()['cache']}")
        time.sleep(0.5)


def replay_once(policy: str, data_dir: str, versions: bool) -> dict:
    """One replay in this process (run in a fresh one per measurement): parity and its cost."""
    from parity_traffic import explain

    from llmgw_kernel import load_policy, replay
    from llmgw_kernel.replay.versions import served_policies

    t0, c0 = time.monotonic(), time.process_time()
    kw = {"versions": served_policies(policy)} if versions else {}
    result = replay(load_policy(policy), data_dir, **kw)
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    n = result.summary["requests"]
    differs = result.summary["differs_from_log"]
    return {
        "requests": n, "differs_from_log": differs, "compare_to_log": result.compare_to_log(),
        "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "req_per_s_per_core": round(n / cpu) if cpu else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "differing_rows": explain(result, data_dir, 20) if result.compare_to_log() else None,
    }  # fmt: skip


def logged_mix(data_dir: str) -> dict[str, Any]:
    """What the log says the mix did (so a reader sees every stage was exercised)."""
    from llmgw_kernel import open_log

    con = open_log(data_dir)
    one = con.execute(
        "SELECT count(*), count(*) FILTER (admission = 'budget_exceeded'),"
        " count(*) FILTER (admission = 'rate_limited'),"
        " count(*) FILTER (cache = 'hit'), count(*) FILTER (cache = 'semantic-hit'), count(*) FILTER (cache = 'miss'),"
        " count(*) FILTER (cache = 'bypass'), count(*) FILTER (len(attempts) > 1 AND outcome = 'ok'),"
        " count(*) FILTER (stream AND status = 200 AND outcome <> 'ok'), count(*) FILTER (outcome = 'abandoned'),"
        " count(*) FILTER (api = 'anthropic'), count(*) FILTER (endpoint = 'embeddings'),"
        " count(*) FILTER (error_type = 'model_not_found'), count(*) FILTER (status IN (401, 403)),"
        " count(*) FILTER (status = 400) FROM requests"
    ).fetchone()  # fmt: skip
    assert one is not None
    names = ("rows", "budget_exceeded", "rate_limited", "exact_hits", "semantic_hits", "misses", "bypasses",
             "fallbacks_ok", "streams_cut", "abandoned", "anthropic", "embeddings", "unknown_model",
             "key_refusals", "malformed")  # fmt: skip
    return dict(zip(names, one, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--reload", action="store_true", help="promote a new version mid-run; replay with versions=")
    ap.add_argument("--restart", action="store_true", help="restart the server two thirds in")
    ap.add_argument("--semantic", action="store_true", help="the semantic cache too (slow: embeddings on CPU)")
    ap.add_argument("--replays", type=int, default=3, help="replay measurements, each in a fresh process")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temporary one)")
    ap.add_argument("--replay-only", nargs=2, metavar=("POLICY", "DATA_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay_only:
        print(json.dumps(replay_once(*args.replay_only, versions=args.reload)))
        return
    out = args.keep or Path(tempfile.mkdtemp(prefix="llmgw-parity-"))
    served = serve_traffic(out, args.requests, args.seed, args.concurrency, args.reload, args.semantic, args.restart)
    runs = []
    for _ in range(args.replays):
        cmd = [sys.executable, __file__, "--replay-only", served["policy"], served["data_dir"]]
        proc = subprocess.run(cmd + (["--reload"] if args.reload else []), capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout))
    first = runs[0]
    report = {
        "command": " ".join(sys.argv), "served": served, "logged": logged_mix(served["data_dir"]),
        "differs_from_log": first["differs_from_log"], "compare_to_log": first["compare_to_log"],
        "replay": {k: [r[k] for r in runs] for k in ("cpu_s", "wall_s", "req_per_s_per_core", "peak_rss_mb")},
        "differing_rows": first["differing_rows"],
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.keep is None:
        shutil.rmtree(out, ignore_errors=True)
    if first["compare_to_log"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
