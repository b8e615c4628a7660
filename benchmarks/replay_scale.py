"""Replay at scale: CPU, requests/s per core and peak memory of ``replay()`` over a 1M-request log.

    .venv/bin/python benchmarks/replay_scale.py                      # 1,000,000 rows, 3 runs per scenario
    .venv/bin/python benchmarks/replay_scale.py --rows 200000 --runs 5
    .venv/bin/python benchmarks/replay_scale.py --profile --scenario full   # where the time goes

**The log** is synthetic but written the way the live proxy writes it: one
:class:`~llmgw_kernel.log.record.RequestRecord` per request, filled in by the same decision
functions the pipeline calls (``plan_route`` over the request's context, ``Limits.admit`` /
``settle`` for budgets and rate limits, ``ExactStore`` for the exact cache, ``cost_usd``),
handed to the real :class:`~llmgw_kernel.log.writer.LogWriter` (``journal=False``). The traffic
is the demo traffic profile drawn in bulk (:func:`llmgw_kernel.traffic_bulk.draw`: its four
teams, their keys, users, hours of a Monday morning, route mixes, token sizes and Zipf-popular
prompts with exact repeats and paraphrases), at 60 requests/s on average over a week, on this
benchmark's policy (:data:`PROFILE`): four routes (two weighted with fallbacks, one in declared
order, one single target without cache) plus a few requests for an unknown model, 4 times the
profile's keys (64) and 100 times its users; a 4% failure rate per attempt (failures fall back
to the next target; a request whose every target failed is an ``upstream_error``); budgets per
team and day that cut the two largest teams off part-way through a 1M-row log (the others
never) and an rpm limit per key (some requests refused at the busiest hour); an exact cache
(ttl 600 s, prompts from 20,000 intents, 10% of requests too hot to cache, 1% ``no-cache``).
Bodies are logged (``bodies: full``); no embeddings. It is generated once into ``--cache-dir``
(default ``/tmp/llmgw-replay-scale``, a folder per row count and :data:`GEN_VERSION`) and
reused; ``policy-live.yaml`` beside it is the policy that "served" it.

**Scenarios**, each timed in a fresh subprocess (CPU = user + sys of the child, all threads,
interpreter start and imports included; peak RSS = the child's ``ru_maxrss``), and the call
alone ("call CPU": ``time.process_time()`` around the scenario's work inside the child, after
importing the modules a replay loads — what a replay costs in a process that is already up),
its user and sys seconds and its minor page faults (``getrusage`` around the ``replay()`` call of
the ``routing`` and ``full`` scenarios: sys is mostly fresh pages handed out, which the
machine's load slows). The child writes and reads Python's bytecode cache as a user's install
does, whatever ``PYTHONDONTWRITEBYTECODE`` says (set on this machine: every process would compile
the modules a replay imports lazily again, inside the call; from 2026-12-06 12:00).
``--again``: each child replays a second time in the same process and reports that call too
(numba's kernel already loaded, the allocator's pages reused — what the next replay in a
notebook or server costs); peak RSS stays the first call's (``ru_maxrss`` read between the two).
``--malloc-hugetlb``: the children run with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc's
heap and mmapped chunks advised as transparent huge pages: docs/replay.md "Huge pages"):

- ``routing-stage``: load the window and run the routing stage alone (replay + summary);
- ``routing``: ``replay()`` of a routing-only candidate (the live routes with other weights,
  no budgets, no cache): every stage runs, the limits and cache stages have nothing to apply;
- ``full``: ``replay()`` of the live policy (routing + budgets + rate limits + exact cache).

Each scenario is run with the columnar replay cache of sealed segments (``replay/segment_cache.py``)
``cold`` (removed before the run: the run builds it), ``warm`` (present) and ``off``
(``LLMGW_REPLAY_CACHE=off``), alternated run by run (``--replay-cache`` picks some).

The child also runs against an older checkout (``PYTHONPATH=<worktree>``): it falls back to the
routing stage's old home (``replay.stages``) so "before" and "after" are measured the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from child_runs import run_child, spread  # benchmarks/ is the script's folder

#: bump when the traffic changes: the cached log is regenerated in a folder of its own
#: (2: cache_lookup_ts logged; 3: the traffic profile's teams, keys, users, hours, routes, prompts;
#: 4: the log's cache_team and exact_key columns, which the fold reads instead of the JSON)
GEN_VERSION = 4
START = 1_793_606_400.0  # 2026-11-02 08:00 UTC, a Monday (traffic_bulk.WEEK_START)
RATE_PER_S = 60.0
N_PROMPTS = 20_000
KEY_ZIPF = 0.7  # a team's first key sends most (the busiest key ~10% of all traffic: the rpm limit bites)
REPEAT_SHARE = 0.85  # of requests in an intent's first words: exact repeats for the cache
FAIL_P = 0.04
#: the demo profile on this benchmark's routes (:func:`profile`): analyst work is batch work
#: here, and so is part of the assistant traffic; part of the chat traffic is summaries (no
#: cache) or asks for a model no route serves
ROUTE_MAP = {
    "analyst": {"batch": 1.0},
    "assistant": {"assistant": 0.8, "batch": 0.2},
    "chat": {"chat": 0.75, "summarize": 0.245, "gpt-5-turbo": 0.005},
}
PRICING = {
    "gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6},
    "gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10.0},
    "gpt-4.1": {"input_per_1m": 2.0, "output_per_1m": 8.0},
    "claude-3-5-haiku": {"input_per_1m": 0.8, "output_per_1m": 4.0},
    "claude-sonnet-4-5": {"input_per_1m": 3.0, "output_per_1m": 15.0},
}


def _routes(weights: tuple[float, float, float, float, float]) -> dict[str, Any]:
    mini, haiku = {"provider": "openai", "model": "gpt-4o-mini"}, {"provider": "anthropic", "model": "claude-3-5-haiku"}
    big = {"provider": "openai", "model": "gpt-4o"}
    sonnet, gpt41 = {"provider": "anthropic", "model": "claude-sonnet-4-5"}, {"provider": "openai", "model": "gpt-4.1"}
    return {
        "chat": {"targets": [{**mini, "weight": weights[0]}, {**haiku, "weight": weights[1]}]},
        "assistant": {
            "targets": [
                {**big, "weight": weights[2]},
                {**sonnet, "weight": weights[3]},
                {**gpt41, "weight": weights[4]},
            ]
        },  # fmt: skip
        "batch": {"targets": [mini, haiku]},
        "summarize": {"targets": [mini], "cache": False},
    }


def policy_doc(kind: str) -> dict[str, Any]:
    """``live``: what served the log (routing + budgets + rpm + exact cache); ``routing``: a
    routing-only candidate (other weights, no budgets, no cache)."""
    doc: dict[str, Any] = {
        "providers": {
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY"},
            "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        },
        "pricing": PRICING,
        "log": {"bodies": "full"},
    }
    if kind == "routing":
        return {**doc, "routes": _routes((50, 50, 40, 40, 20))}
    return {
        **doc,
        "routes": _routes((70, 30, 50, 30, 20)),
        "budgets": {
            "limits": [
                {"scope": "team", "name": "search", "usd": 400, "window": "day"},
                {"scope": "team", "usd": 450, "window": "day"},
            ]
        },
        "rate_limits": [{"scope": "key", "rpm": 400}],
        "cache": {"exact": {"ttl_s": 600}, "max_temperature": 0.7},
    }


# -- the log ---------------------------------------------------------------------------------
class _Live:
    """The live proxy's state while the synthetic log is "served": limits, exact stores, and
    the settlements and cache stores still to happen (applied in time order)."""

    def __init__(self, policy: Any) -> None:
        from llmgw_kernel.decisions.limits import Limits

        self.policy = policy
        self.limits = Limits()
        self.exact: dict[str, Any] = {}
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = 0

    def later(self, at: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, payload))

    def until(self, at: float) -> None:
        from llmgw_kernel.cache.exact import ExactStore

        while self.events and self.events[0][0] < at:
            _, _, kind, p = heapq.heappop(self.events)
            if kind == "settle":
                self.limits.settle(*p)
            else:
                route, key, entry, max_entries = p
                self.exact.setdefault(route, ExactStore()).put(key, entry, max_entries)


def _serve(live: _Live, rec: Any, body: dict[str, Any], control: str | None, draws: np.ndarray) -> None:
    """Fill ``rec`` as the pipeline does: plan → admission → exact cache → attempts → cost (the
    upstream's behaviour — latency, failures, usage — is this benchmark's own: uniform draws)."""
    from llmgw_kernel.cache.exact import Entry
    from llmgw_kernel.decisions import cache as decide
    from llmgw_kernel.decisions.context import route_context
    from llmgw_kernel.decisions.cost import cost_usd
    from llmgw_kernel.decisions.limits import (
        Subject,
        applicable_budgets,
        applicable_rates,
        completion_upper_bound,
        prompt_upper_bound,
        worst_case_usd,
    )
    from llmgw_kernel.decisions.routing import plan_route

    policy, route = live.policy, rec.route
    if route not in policy.routes:
        rec.status, rec.outcome, rec.error_type = 404, "client_error", "model_not_found"
        rec.error_message, rec.ts_end, rec.latency_ms = f"model {route} not found", rec.ts + 0.002, 2.0
        return
    plan = plan_route(policy, route, rec.request_id, route_context(rec.request_id, route, body, rec.metadata))
    rec.plan, rec.route_reason, rec.end_user = plan.targets, plan.reason, rec.end_user or rec.metadata.get("user")
    subject = Subject(rec.key_id, rec.team, rec.end_user, route)
    budgets, rates = applicable_budgets(policy, None, subject), applicable_rates(policy, None, subject)
    admitted = False
    if budgets or rates:
        at = rec.ts + 0.0004
        live.until(at)
        prompt, completion = prompt_upper_bound(body), completion_upper_bound(body, 4096)
        worst = worst_case_usd(policy, plan.targets, prompt, completion) if budgets else 0.0
        rec.admitted_ts, rec.reserved_usd, rec.reserved_prompt_tokens = at, worst, prompt
        rec.reserved_tokens = prompt + completion
        v = live.limits.admit(rec.request_id, at, subject, budgets, rates, worst, prompt + completion)
        rec.admission, rec.admission_reason, rec.budget_flags = v.kind, v.reason, list(v.flags) or None
        if not v.allowed:
            rec.status, rec.outcome, rec.error_type, rec.error_message = 429, "limited", v.kind, v.reason
            rec.ts_end, rec.latency_ms = rec.ts + 0.001, 1.0
            return
        admitted = True
    settings = policy.cache_for(route)
    store_key = None
    if settings is not None and settings.exact is not None:
        rec.cache_control = control
        rec.cache_namespace = ns = decide.namespace(settings, route, rec.key_id, rec.team, None)
        rec.cache_key = raw = decide.exact_key(route, body)
        why = decide.bypass_reason(settings, body, control)
        if why is not None:
            rec.cache, rec.cache_reason = "bypass", why
        else:
            rec.cache, store_key = "miss", decide.scoped(ns, raw)
            rec.cache_reason = decide.NO_CACHE if control == decide.NO_CACHE else None
            rec.cache_lookup_ts = rec.ts + 0.0005  # after admission: the stores as they are then
            live.until(rec.cache_lookup_ts)
            store = live.exact.get(route) if control != decide.NO_CACHE else None
            entry = store.get(store_key, rec.ts, settings.exact.ttl_s) if store is not None else None
            if entry is not None:
                rec.cache, rec.cache_source, rec.status, rec.outcome = "hit", entry.request_id, 200, "ok"
                usage = entry.usage
                rec.cost_usd, rec.saved_usd = 0.0, cost_usd(policy, entry.target, usage["prompt_tokens"],
                                                            usage["completion_tokens"])  # fmt: skip
                _finish(live, rec, 0.003 + 0.002 * draws[0], admitted, 0)
                return
    elapsed = 0.0
    for k, target in enumerate(plan.targets):
        ms = round(300.0 + 2500.0 * draws[1 + k % 3], 3)
        failed = draws[4 + k % 3] < FAIL_P
        rec.attempts.append({"target": target, "status": 500 if failed else 200, "latency_ms": ms,
                             "error": "upstream_500: HTTP 500" if failed else None})  # fmt: skip
        elapsed += ms / 1000
        if not failed:
            provider, model = target.split("/", 1)
            rec.target, rec.provider, rec.upstream_model, rec.upstream_ms = target, provider, model, ms
            pt, ct = 20 + int(draws[7] * 900), 5 + int(draws[8] * 400)
            rec.usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
            rec.cost_usd = cost_usd(policy, target, pt, ct)
            rec.status, rec.outcome = 200, "ok"
            rec.response_raw = b'{"id":"c","object":"chat.completion","choices":[]}'
            if store_key is not None:
                rec.cache_stored_ts = rec.ts + elapsed + 0.001
                entry = Entry(rec.request_id, rec.cache_stored_ts, b"-", target, rec.usage)
                live.later(rec.cache_stored_ts, "store", (route, store_key, entry, settings.exact.max_entries))
            break
    else:
        rec.status, rec.outcome, rec.error_type = 502, "upstream_error", "upstream_500"
        rec.error_message = f"{plan.targets[-1]}: HTTP 500"
    tokens = (rec.usage or {}).get("total_tokens", 0)
    _finish(live, rec, elapsed + 0.002, admitted, tokens)


def _finish(live: _Live, rec: Any, elapsed: float, admitted: bool, tokens: int) -> None:
    rec.ts_end, rec.latency_ms = rec.ts + elapsed, round(elapsed * 1000, 3)
    if admitted:
        rec.settled_ts = rec.ts_end
        live.later(rec.settled_ts, "settle", (rec.request_id, rec.settled_ts, rec.cost_usd, tokens))


def profile() -> Any:
    """The demo traffic profile on this benchmark's policy (:data:`ROUTE_MAP`), 8 times its keys
    and 100 times its users (imported here: an older checkout measured by the child lacks it)."""
    from llmgw_kernel.traffic_bulk import for_policy
    from llmgw_kernel.traffic_profile import PROFILES

    return for_policy(PROFILES["demo"], "replay-scale", ROUTE_MAP, keys=8, users=150, key_zipf=KEY_ZIPF,
                      repeat_share=REPEAT_SHARE)  # fmt: skip


def generate(data_dir: Path, rows: int, seed: int = 0, chunk: int = 50_000) -> None:
    """Write ``rows`` synthetic requests to the log in ``data_dir`` (plus policy-live.yaml)."""
    from llmgw_kernel import load_policy
    from llmgw_kernel.cache.service import key_id
    from llmgw_kernel.log.record import RequestRecord
    from llmgw_kernel.log.writer import LogWriter
    from llmgw_kernel.traffic_bulk import PHRASINGS, draw, prompt_text

    data_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("live", "routing"):
        (data_dir / f"policy-{kind}.yaml").write_text(yaml.safe_dump(policy_doc(kind), sort_keys=False))
    live = _Live(load_policy(data_dir / "policy-live.yaml"))
    prof = profile()
    d = draw(prof, rows, seed=seed, start=START, rate_per_s=RATE_PER_S, intents=N_PROMPTS)
    keys = [[key_id(f"sk-synthetic-{t.name}-{k}") for k in range(t.keys)] for t in prof.teams]
    draws = np.random.default_rng(seed).random((rows, 10))  # latency, failures, temperature, no-cache
    texts: dict[int, str] = {}
    writer = LogWriter(data_dir, flush_ms=3_600_000, journal=False)
    for i in range(rows):
        team, p = int(d.team[i]), int(d.intent[i]) * PHRASINGS + int(d.phrasing[i])
        rid = "req_" + hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=12).hexdigest()
        rec = RequestRecord(rid, float(d.ts[i]), "chat.completions")
        rec.route, rec.policy_version = d.routes[d.route[i]], live.policy.version
        rec.key_id, rec.team = keys[team][d.key[i]], d.teams[team]
        rec.metadata = {"team": rec.team, "user": f"{rec.team}-user-{d.user[i]}", "session": f"s{i // 50}"}
        if p not in texts:
            texts[p] = prompt_text(int(d.intent[i]), int(d.phrasing[i]))
        body: dict[str, Any] = {"model": rec.route, "max_tokens": 512,
                                "messages": [{"role": "user", "content": texts[p]}]}  # fmt: skip
        if draws[i, 9] < 0.10:
            body["temperature"] = 1.0
            rec.temperature = 1.0
        rec.request_raw = json.dumps(body).encode()
        control = "no-cache" if draws[i, 9] > 0.99 else None
        _serve(live, rec, body, control, draws[i])
        writer.append(rec)
        if (i + 1) % chunk == 0 or i + 1 == rows:
            writer.flush()
            print(f"  generated {i + 1:,} rows", file=sys.stderr, flush=True)
    writer.close()


def ensure_log(cache_dir: Path, rows: int) -> Path:
    """The data directory holding a log of ``rows`` requests (generated once, then reused)."""
    return cached_log(cache_dir / f"rows-{rows}-v{GEN_VERSION}", lambda d: generate(d, rows))


def cached_log(data_dir: Path, write: Callable[[Path], None]) -> Path:
    """``data_dir`` once it holds a complete log, ``write`` filling it the first time.

    Written in a folder of its own and renamed into place only when complete: a second run
    started meanwhile (another engineer, the same script) writes its own copy instead of
    deleting this one's half-written log, and the first complete copy wins."""
    import shutil

    if (data_dir / "complete.json").exists():
        return data_dir
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{data_dir.name}.partial-", dir=data_dir.parent))
    t0 = time.perf_counter()
    write(work)
    (work / "complete.json").write_text(json.dumps({"generated_s": round(time.perf_counter() - t0, 1)}))
    if data_dir.exists() and not (data_dir / "complete.json").exists():
        shutil.rmtree(data_dir, ignore_errors=True)  # an incomplete log of an older layout or a crashed run
    try:
        work.rename(data_dir)
    except OSError:  # another run finished first: use its log
        shutil.rmtree(work, ignore_errors=True)
    return data_dir


# -- measurement -----------------------------------------------------------------------------
SCENARIOS = ("routing-stage", "routing", "full")


def _routing_stage() -> tuple[Any, Any]:
    """(run the routing stage over a window -> (columns, differs), its summary), from this
    checkout or an older one (``PYTHONPATH=<worktree>``)."""
    try:
        from llmgw_kernel.replay.routing_stage import route_window
        from llmgw_kernel.replay.routing_stage import summarize_routing as summ

        def run(pol: Any, window: Any) -> tuple[Any, Any]:
            _, cols, differs = route_window(pol, window)
            return cols, differs

        return run, summ
    except ImportError:
        pass
    try:  # before route_window
        from llmgw_kernel.replay.routing_stage import replay_routing_stage, summarize_routing

        return replay_routing_stage, summarize_routing
    except ImportError:  # the routing stage lived in replay.stages
        from llmgw_kernel.replay.stages import _routing, _routing_summary  # type: ignore

        return _routing, _routing_summary


def child(scenario: str, data_dir: Path, out: Path) -> None:
    """Run one scenario in this (fresh) process and write what it produced to ``out``, with the
    CPU seconds of the replay alone (``process_time`` around it: no interpreter start,
    and no module imports: the modules a replay loads lazily are imported before the clock starts)."""
    import importlib

    # Python's default, as in a user's install (its modules' bytecode cached): this machine's
    # environment sets PYTHONDONTWRITEBYTECODE=1, under which every process compiles the modules a
    # replay imports lazily again, inside the measured call (~0.05 CPU s)
    sys.dont_write_bytecode = False
    from llmgw_kernel import replay

    for name in ("duckdb", "pandas", "pyarrow", "llmgw_kernel.replay.stages", "llmgw_kernel.replay.window"):
        importlib.import_module(name)

    if scenario == "routing-stage":
        from llmgw_kernel import load_policy
        from llmgw_kernel.replay import load_window

        run, summ = _routing_stage()
        pol = load_policy(data_dir / "policy-routing.yaml")
        t0 = time.process_time()
        window = load_window(str(data_dir))
        cols, diff = run(pol, window)
        summary = summ(pol, window, cols)
        cpu = time.process_time() - t0
        facts = {"requests": len(diff), "differs": int(np.count_nonzero(diff)), "routed": summary["routing"]["routed"]}
    else:
        name = "policy-routing.yaml" if scenario == "routing" else "policy-live.yaml"
        clock = _kernel_share()
        t0 = time.process_time()
        result = replay(data_dir / name, str(data_dir))
        cpu = time.process_time() - t0
        facts = {"requests": result.summary["requests"], "differs": result.summary["differs_from_log"]}
        facts.update(clock.stop())
        if os.environ.get(AGAIN_ENV):  # the same replay again in this process: what a notebook's next one costs
            import gc
            import resource

            facts["peak_first_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            del result
            gc.collect()
            clock = _kernel_share()
            t0 = time.process_time()
            result = replay(data_dir / name, str(data_dir))
            facts["again_cpu_s"] = time.process_time() - t0
            facts.update({k.replace("call_", "again_"): v for k, v in clock.stop().items()})
            if result.summary["differs_from_log"] != facts["differs"]:
                raise SystemExit(f"the second replay differs from the first: {result.summary['differs_from_log']}")
    facts["call_cpu_s"] = cpu
    out.write_text(json.dumps(facts, default=str))


def _kernel_share() -> Any:
    """A clock of the call's kernel side: ``stop()`` gives (user s, sys s, minor page faults)
    since it was made — sys is mostly the kernel handing out fresh pages (faults), which the
    machine's load slows, so it is reported apart from the user CPU."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_SELF)

    class Clock:
        @staticmethod
        def stop() -> dict[str, float]:
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            return {"call_user_s": r1.ru_utime - r0.ru_utime, "call_sys_s": r1.ru_stime - r0.ru_stime,
                    "call_minflt": r1.ru_minflt - r0.ru_minflt}  # fmt: skip

    return Clock


#: what ``--malloc-hugetlb`` adds to the children's ``GLIBC_TUNABLES``
HUGETLB_TUNABLE = "glibc.malloc.hugetlb=1"
#: set (by ``--again``) in the child's environment: it replays a second time in the same process
AGAIN_ENV = "REPLAY_SCALE_AGAIN"

#: how a run meets the columnar cache of sealed segments (llmgw_kernel/replay/segment_cache.py):
#: ``cold`` = removed before the run (the run builds it), ``warm`` = present (built by an earlier
#: run), ``off`` = not used (``LLMGW_REPLAY_CACHE=off``: the window read through the view)
CACHE_MODES = ("cold", "warm", "off")


_WARMED: set[tuple[Path, str]] = set()  # (log, scenario) whose cache a run of this process left warm


def measure(scenario: str, data_dir: Path, profile: bool = False, cache: str = "warm") -> dict[str, Any]:
    """One run in a fresh subprocess: CPU s (user + sys), peak RSS, wall, and what it replayed."""
    import shutil

    # spelled out, not imported: a checkout before the cache (PYTHONPATH=<worktree>) runs this too
    root, env = data_dir / "replay-cache", "LLMGW_REPLAY_CACHE"
    os.environ.pop(env, None)
    if cache == "cold":
        shutil.rmtree(root, ignore_errors=True)
    elif cache == "warm" and (data_dir, scenario) not in _WARMED:
        run_child(__file__, scenario, data_dir)  # builds or refreshes it (entries of other code): not measured
        _WARMED.add((data_dir, scenario))
    elif cache == "off":
        os.environ[env] = "off"
    try:
        run = run_child(__file__, scenario, data_dir, profile, top=30)
    finally:
        os.environ.pop(env, None)
    return {**run, "req_s_core": run["requests"] / run["cpu_s"], "call_req_s_core": run["requests"] / run["call_cpu_s"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenario", choices=SCENARIOS, action="append", help="default: all")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmgw-replay-scale")
    ap.add_argument("--profile", action="store_true", help="one profiled run per scenario: top functions")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--replay-cache", choices=CACHE_MODES, action="append",
                    help="cold | warm | off, alternated run by run (default: all three)")  # fmt: skip
    ap.add_argument("--again", action="store_true",
                    help="each child replays twice: also report the second call (numba loaded, the allocator's "
                    "pages reused: a notebook's next replay); peak RSS is still the first call's")  # fmt: skip
    ap.add_argument("--malloc-hugetlb", action="store_true",
                    help=f"children run with GLIBC_TUNABLES={HUGETLB_TUNABLE} (malloc's memory on transparent "
                    "huge pages; alternate runs with and without it for an A/B)")  # fmt: skip
    ap.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.data_dir, args.out)
        return
    data_dir = ensure_log(args.cache_dir, args.rows)
    if args.generate_only:
        print(data_dir)
        return
    print(f"log: {data_dir} ({args.rows:,} rows); load average {os.getloadavg()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    modes = args.replay_cache or list(CACHE_MODES)
    if args.again:
        os.environ[AGAIN_ENV] = "1"
    if args.malloc_hugetlb:  # read by glibc when a child starts
        os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), HUGETLB_TUNABLE]))
    print(f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}")
    for scenario in args.scenario or SCENARIOS:
        if args.profile:
            print(json.dumps(measure(scenario, data_dir, profile=True, cache=modes[0]), default=str))
            continue
        by_mode: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(args.runs):  # alternated, so that the machine's load moves every mode alike
            for mode in modes:
                by_mode[mode].append(measure(scenario, data_dir, cache=mode))
        for mode, runs in by_mode.items():
            print(
                f"{scenario:>13} cache {mode:>4}: CPU s {spread([r['cpu_s'] for r in runs], '{:.2f}')}"
                f" | req/s/core {spread([r['req_s_core'] for r in runs], '{:,.0f}')}"
                f" | call CPU s {spread([r['call_cpu_s'] for r in runs], '{:.2f}')}"
                f" | call req/s/core {spread([r['call_req_s_core'] for r in runs], '{:,.0f}')}"
                f" | call user/sys s {spread([r.get('call_user_s', 0) for r in runs], '{:.2f}')}"
                f" / {spread([r.get('call_sys_s', 0) for r in runs], '{:.2f}')}"
                f" | call minor faults {spread([r.get('call_minflt', 0) for r in runs], '{:,.0f}')}"
                f" | peak RSS MB {spread([r.get('peak_first_mb', r['rss_mb']) for r in runs], '{:,.0f}')}"
                f" | wall s {spread([r['wall_s'] for r in runs], '{:.2f}')}"
                f" | differs {runs[0]['differs']}  (min / median / max of {len(runs)})",
                flush=True,
            )
            if args.again:
                print(
                    f"{scenario:>13} cache {mode:>4}, the second call in the process: CPU s"
                    f" {spread([r['again_cpu_s'] for r in runs], '{:.2f}')}"
                    f" | req/s/core {spread([r['requests'] / r['again_cpu_s'] for r in runs], '{:,.0f}')}"
                    f" | user/sys s {spread([r['again_user_s'] for r in runs], '{:.2f}')}"
                    f" / {spread([r['again_sys_s'] for r in runs], '{:.2f}')}"
                    f" | minor faults {spread([r['again_minflt'] for r in runs], '{:,.0f}')}"
                    f" | peak RSS MB over both {spread([r['rss_mb'] for r in runs], '{:,.0f}')}",
                    flush=True,
                )
    cached = data_dir / "replay-cache"
    if cached.exists():
        print(f"replay cache: {sum(f.stat().st_size for f in cached.iterdir()) / 2**20:,.0f} MB in {cached}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
