"""Does opening dashboards stall the proxy? Proxy latency with and without dashboard loads.

Starts ``llmgw serve`` on a free port with a fresh data directory, then, in separate
processes so the load generators do not share a GIL with each other:

* a proxy client sends ``demo`` chat completions one at a time (concurrency 1, keep-alive)
  and records each latency;
* during some phases, dashboard loaders run next to it: plain HTTP GETs of ``/`` (each one
  makes Panel build a Bokeh session) and/or real headless-Chromium loads (page, assets,
  websocket, Tabulator rows), with one more Chromium tab kept open (5 s refresh).

Phases: ``baseline`` (Panel not started), ``cold`` (the first dashboard request arrives
1 s in: Panel is started while the proxy serves), ``idle`` (Panel running, no dashboard
traffic), ``gets`` (back-to-back page GETs), ``chromium`` (Chromium loads on the same
machine) and ``chromium-nice`` (the same with the browser at nice 10, standing in for a
browser on another machine). For each: proxy latency p50/p90/p99/p99.9/max, requests
served, the server's CPU (main thread = the proxy's event loop), the main thread's CPU
per request, and how long the server's main thread and the client waited for a CPU
(schedstat run-queue time: waiting for the GIL is not in it, waiting for a core is).
The server runs with a probe on its event loop (a 2 ms sleep that reports when it wakes
more than 10 ms late, and how much of that the main thread spent waiting for a CPU): the
rest of such a lag happened inside the process (GIL, garbage collection, a busy loop), which
is what a dashboard must never cause; waiting for a core depends on the machine's load.
``--isolation process,thread`` runs everything for Panel in a child process (default)
and on a thread of the proxy (``LLMGW_DASHBOARD_ISOLATION``).

    .venv/bin/python benchmarks/dashboard_stall.py --duration 20
    .venv/bin/python benchmarks/dashboard_stall.py --duration 20 --markdown
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "how fast is this gateway?"}]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs `llmgw serve` with a probe on the proxy's event loop: a task that sleeps 2 ms and, when
# it wakes up more than 10 ms late, logs by how much, how much of that the main thread spent
# waiting for a CPU (schedstat), how much CPU it used meanwhile (the loop busy: a long callback)
# and how much of that was garbage collection (gc.callbacks). The rest of the lag — neither
# waiting for a core nor running — is the main thread asleep inside the process: waiting for
# the GIL (another thread holds it) or blocked in a call.
PROBE = """
import asyncio, gc, os, sys, time
import llmgw_kernel.proxy.runtime as runtime

def runq():
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat") as fh:
        return int(fh.read().split()[1]) / 1e9

GC = {"s": 0.0, "t0": None}
def on_gc(phase, info):
    if phase == "start":
        GC["t0"] = time.thread_time()
    elif GC["t0"] is not None:
        GC["s"] += time.thread_time() - GC["t0"]
        GC["t0"] = None
gc.callbacks.append(on_gc)

# who else ran, or waited for a core, meanwhile: once this file exists (reading every thread's
# schedstat each 2 ms costs a few % of a core, which would keep the compaction wait from settling)
THREADS_FLAG = os.environ.get("LLMGW_PROBE_THREADS")
def threads():
    import threading
    names = {str(t.native_id): t.name.replace(" ", "_") for t in threading.enumerate()}
    out = {}
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{tid}/schedstat") as fh:
                run, wait = fh.read().split()[:2]
            name = names.get(tid)
            if name is None:  # not a Python thread (DuckDB's, uvloop's, ...): the OS's name
                with open(f"/proc/{os.getpid()}/task/{tid}/comm") as fh:
                    name = "os:" + fh.read().strip().replace(" ", "_")
            out[tid] = (name, int(run) / 1e6, int(wait) / 1e6)
        except OSError:
            pass
    return out

async def probe():
    while True:
        t0, r0, c0, g0 = time.perf_counter(), runq(), time.thread_time(), GC["s"]
        THREADS = THREADS_FLAG is not None and os.path.exists(THREADS_FLAG)
        before = threads() if THREADS else {}
        await asyncio.sleep(0.002)
        lag = time.perf_counter() - t0 - 0.002
        if lag > 0.010:
            waited, cpu = (runq() - r0) * 1000, (time.thread_time() - c0) * 1000
            print(f"LLMGW_LAG {time.time():.3f} {lag * 1000:.1f} {waited:.1f} {cpu:.1f} {(GC['s'] - g0) * 1000:.1f}",
                  file=sys.stderr, flush=True)
            if THREADS and lag * 1000 - waited > 20:  # an in-process stall: each other thread's run / wait ms
                after = threads()
                parts = [f"{after[t][0]}:{after[t][1] - b[1]:.1f}/{after[t][2] - b[2]:.1f}" for t, b in before.items()
                         if t in after and t != str(os.getpid()) and after[t][1] + after[t][2] > b[1] + b[2]]
                print(f"LLMGW_STALL_THREADS {time.time():.3f} {lag * 1000:.1f} " + " ".join(parts),
                      file=sys.stderr, flush=True)

start = runtime.Gateway.start
async def start_with_probe(self):
    await start(self)
    self._llmgw_probe = asyncio.get_running_loop().create_task(probe())
runtime.Gateway.start = start_with_probe
sys.argv = ["llmgw", *sys.argv[1:]]
from llmgw_kernel.cli import main
sys.exit(main())
"""


def loop_stalls(log: Path, start: float, end: float) -> dict:
    """The probe's reports between ``start`` and ``end`` (epoch seconds)."""
    lags = []
    others: dict[str, list[float]] = {}  # thread name -> [ran, waited for a core] ms within the stalls
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("LLMGW_STALL_THREADS ") and start <= float(line.split()[1]) <= end:
            for part in line.split()[3:]:
                name, _, ms = part.rpartition(":")
                ran, waited = (float(x) for x in ms.split("/"))
                acc = others.setdefault(name, [0.0, 0.0])
                acc[0], acc[1] = acc[0] + ran, acc[1] + waited
        if line.startswith("LLMGW_LAG "):
            _, at, lag, runq, cpu, gc_ms = line.split()
            if start <= float(at) <= end:
                lags.append((float(lag), float(runq), float(cpu), float(gc_ms)))
    inside = [(lag - min(runq, lag), cpu, gc_ms) for lag, runq, cpu, gc_ms in lags]
    stalls = [(v, min(cpu, v), min(gc_ms, cpu, v)) for v, cpu, gc_ms in inside if v > 20]
    return {
        "loop_lags_over_20ms": sum(lag > 20 for lag, *_ in lags),
        "in_process_stalls_over_20ms": len(stalls),
        "longest_in_process_stall_ms": max((v for v, *_ in inside), default=0.0),
        # the in-process stalls' time: the loop running (of it, collecting garbage) or asleep
        "stall_ms": sum(v for v, *_ in stalls),
        "stall_running_ms": sum(cpu for _, cpu, _ in stalls),
        "stall_gc_ms": sum(g for *_, g in stalls),
        "stall_other_threads_ms": {k: [round(v[0], 1), round(v[1], 1)] for k, v in others.items()},
    }


def start_server(port: int, tmp: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-c", PROBE, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--policy", str(tmp / "live.yaml"), "--data-dir", str(tmp / "data"), "--log-level", "warning",
    ]  # fmt: skip
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start; see {tmp / 'server.log'}")


# -- load generators (each runs in its own process) --------------------------------------------
def proxy_load(port: int, duration: float, out: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    latencies: list[float] = []
    errors = 0
    runq0 = runqueue_wait_s(os.getpid())
    end = time.perf_counter() + duration
    while (t0 := time.perf_counter()) < end:
        conn.request("POST", "/v1/chat/completions", BODY, headers)
        resp = conn.getresponse()
        resp.read()
        latencies.append((time.perf_counter() - t0) * 1000)
        errors += resp.status != 200
    out.put({"latencies": latencies, "errors": errors, "runq_s": runqueue_wait_s(os.getpid()) - runq0})


def page_gets(port: int, stop: mp.Event, out: mp.Queue, delay: float = 0.0, once: bool = False) -> None:
    time.sleep(delay)
    times: list[float] = []
    while not stop.is_set() and not (once and times):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as r:
            r.read()
        times.append((time.perf_counter() - t0) * 1000)
    out.put({"kind": "gets", "times": times})


def chromium_loads(port: int, stop: mp.Event, ready: mp.Event, out: mp.Queue, nice: int = 0) -> None:
    from playwright.sync_api import Error, sync_playwright

    if nice:
        os.nice(nice)  # inherited by Chromium: the browser then yields the CPU to the gateway
    url = f"http://127.0.0.1:{port}/"
    times: list[float] = []
    failures = 0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            kept = browser.new_page()  # one dashboard stays open (its 5 s refresh keeps running)
            kept.goto(url, timeout=120_000)
            kept.wait_for_selector("table.llmgw-recent tbody tr", state="attached", timeout=120_000)
            ready.set()
            while not stop.is_set():
                page = browser.new_page()
                t0 = time.perf_counter()
                try:
                    page.goto(url, timeout=60_000)
                    page.wait_for_selector("table.llmgw-recent tbody tr", state="attached", timeout=60_000)
                    times.append((time.perf_counter() - t0) * 1000)
                except Error:
                    failures += 1
                page.close()
            browser.close()
    finally:
        out.put({"kind": "chromium", "times": times, "failures": failures})


PAGES = ("overview", "cost", "budgets", "cache", "routing")


def chromium_pages(port: int, stop: mp.Event, ready: mp.Event, out: mp.Queue, query: str, nice: int = 0) -> None:
    """Rounds of five dashboard pages loading at once (five tabs), until stopped; each round's
    time is until all five are filled (``[data-ready]``)."""
    from playwright.sync_api import Error, sync_playwright

    if nice:
        os.nice(nice)
    times: list[float] = []
    failures = 0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # one context, one browser cache: Panel started, Bokeh's JS cached as in an operator's
            # browser (browser.new_page() opens a fresh context: every tab fetched ~3.5 MB of
            # scripts through the proxy, each round)
            context = browser.new_context()
            warm = context.new_page()
            warm.goto(f"http://127.0.0.1:{port}/policy", timeout=120_000)
            warm.wait_for_selector("[data-ready]", state="attached", timeout=120_000)
            warm.close()
            ready.set()
            while not stop.is_set():
                tabs = [context.new_page() for _ in PAGES]
                t0 = time.perf_counter()
                try:
                    for tab, name in zip(tabs, PAGES, strict=True):
                        tab.goto(f"http://127.0.0.1:{port}/{name}?{query}", wait_until="commit", timeout=60_000)
                    for tab in tabs:
                        tab.wait_for_selector("[data-ready]", state="attached", timeout=120_000)
                    times.append((time.perf_counter() - t0) * 1000)
                except Error:
                    failures += 1
                for tab in tabs:
                    tab.close()
            browser.close()
    finally:
        out.put({"kind": "pages", "times": times, "failures": failures})


# -- measurement -------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> tuple[float, float]:
    """(main thread, all threads) CPU seconds of the server process."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        with open(path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    return read(f"/proc/{pid}/task/{pid}/stat"), read(f"/proc/{pid}/stat")


def log_worker_pid(pid: int) -> int | None:
    """The server's log worker process (segments and merges, ``llmgw_kernel.log.segment_worker``),
    if it runs one (older servers merge on a thread of their own)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids = [int(c) for c in fh.read().split()]
        except FileNotFoundError:
            continue
        for kid in kids:
            try:
                if b"segment_worker" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    return kid
            except FileNotFoundError:
                continue
    return None


def log_worker_cpu_s(worker: int | None) -> float:
    """CPU seconds of the log worker process (0 without one)."""
    if worker is None:
        return 0.0
    try:
        return cpu_seconds(worker)[1]
    except FileNotFoundError:
        return float("nan")


def wait_compacted(pid: int, timeout_s: float, quiet_s: float = 5.0) -> float:
    """Wait until the idle server has used under 5% of a core for ``quiet_s``: a copied 1M-row
    log is merged by the log compactor for minutes after the server starts (measured with
    py-spy: it kept a core busy through every phase), which is not what a dashboard costs.
    Returns the seconds waited."""
    t0 = last_busy = time.monotonic()
    worker = log_worker_pid(pid)  # it merges there, not in the server's process
    before = cpu_seconds(pid)[1] + log_worker_cpu_s(worker)
    while time.monotonic() - t0 < timeout_s:
        time.sleep(1.0)
        now = cpu_seconds(pid)[1] + log_worker_cpu_s(worker)
        if now - before > 0.05:
            last_busy = time.monotonic()
        before = now
        if time.monotonic() - last_busy >= quiet_s:
            break
    return time.monotonic() - t0


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's main thread spent runnable but waiting for a CPU (schedstat).

    Waiting for the GIL is not in here (that is a sleep); waiting for a core is."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (FileNotFoundError, IndexError, ValueError):
        return float("nan")


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_phase(
    name: str, port: int, pid: int, log: Path, duration: float,
    gets: bool = False, chromium: bool = False, first_get_at: float | None = None, browser_nice: int = 0,
    pages: bool = False, query: str = "",
) -> dict:  # fmt: skip
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    stop, ready = ctx.Event(), ctx.Event()
    loaders = []
    if gets or first_get_at is not None:
        once = first_get_at is not None
        loaders.append(ctx.Process(target=page_gets, args=(port, stop, out, first_get_at or 0.0, once)))
    if chromium:
        loaders.append(ctx.Process(target=chromium_loads, args=(port, stop, ready, out, browser_nice)))
    if pages:
        loaders.append(ctx.Process(target=chromium_pages, args=(port, stop, ready, out, query, browser_nice)))
    for p in loaders:
        p.start()
    if (chromium or pages) and not ready.wait(180):  # Chromium's own start-up is not what we measure
        raise SystemExit("Chromium did not load the dashboard within 120 s")
    main0, all0 = cpu_seconds(pid)
    worker = log_worker_pid(pid)
    worker0 = log_worker_cpu_s(worker)
    runq0 = runqueue_wait_s(pid)
    t0, started = time.perf_counter(), time.time()
    client = ctx.Process(target=proxy_load, args=(port, duration, out))
    client.start()
    results = [out.get(timeout=duration + 120)]
    while "latencies" not in results[-1]:  # a loader that was done early ("cold") reported first
        results.append(out.get(timeout=duration + 120))
    wall = time.perf_counter() - t0
    main1, all1 = cpu_seconds(pid)
    worker1 = log_worker_cpu_s(worker)
    runq1 = runqueue_wait_s(pid)
    ended = time.time()
    stop.set()
    results += [out.get(timeout=180) for _ in range(len(loaders) + 1 - len(results))]
    for p in [client, *loaders]:
        p.join(timeout=60)
    proxy = next(r for r in results if "latencies" in r)
    lat = sorted(proxy["latencies"])
    loads = {r["kind"]: r["times"] for r in results if "kind" in r}
    return {
        "phase": name,
        "requests": len(lat),
        "errors": proxy["errors"],
        "p50_ms": pct(lat, 0.50),
        "p90_ms": pct(lat, 0.90),
        "p99_ms": pct(lat, 0.99),
        "p999_ms": pct(lat, 0.999),
        "max_ms": lat[-1] if lat else float("nan"),
        "over_10ms": sum(v > 10 for v in lat),
        "server_cpu_pct": 100 * (all1 - all0) / wall,
        "log_worker_cpu_pct": 100 * (worker1 - worker0) / wall,  # 0: no worker process (merges in the server)
        "main_thread_cpu_pct": 100 * (main1 - main0) / wall,
        "main_thread_cpu_us_per_request": 1e6 * (main1 - main0) / max(1, len(lat)),
        "main_thread_runq_ms_per_s": 1000 * (runq1 - runq0) / wall,
        "client_runq_ms_per_s": 1000 * proxy["runq_s"] / wall,
        **loop_stalls(log, started, ended),
        "page_gets": len(loads.get("gets", [])),
        "page_get_p50_ms": pct(sorted(loads.get("gets", [])), 0.5),
        "chromium_loads": len(loads.get("chromium", [])),
        "chromium_load_p50_ms": pct(sorted(loads.get("chromium", [])), 0.5),
        "chromium_failures": sum(r.get("failures", 0) for r in results if r.get("kind") == "chromium"),
        "page_rounds": len(loads.get("pages", [])),  # five pages at once, until all five are filled
        "page_round_p50_ms": pct(sorted(loads.get("pages", [])), 0.5),
        "page_round_failures": sum(r.get("failures", 0) for r in results if r.get("kind") == "pages"),
    }


def markdown(rows: list[dict]) -> str:
    head = ("| phase | proxy requests | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | >10 ms | "
            "server CPU % (main thread) + log worker % | main thread µs/request "
            "| waiting for a CPU, ms/s: server main / client "
            "| loop lags > 20 ms: all / in-process | longest in-process stall ms "
            "| in-process stall ms: all / loop running / GC "
            "| page GETs (p50 ms) | Chromium loads (p50 ms) | 5-page rounds (p50 ms) |")  # fmt: skip
    lines = [head, "|" + "---|" * 17]
    for r in rows:
        lines.append(
            f"| {r['phase']} | {r['requests']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['p999_ms']:.2f} | {r['max_ms']:.1f} | {r['over_10ms']} "
            f"| {r['server_cpu_pct']:.0f} ({r['main_thread_cpu_pct']:.0f}) + {r.get('log_worker_cpu_pct', 0):.0f} "
            f"| {r['main_thread_cpu_us_per_request']:.0f} "
            f"| {r['main_thread_runq_ms_per_s']:.0f} / {r['client_runq_ms_per_s']:.0f} "
            f"| {r['loop_lags_over_20ms']} / {r['in_process_stalls_over_20ms']} "
            f"| {r['longest_in_process_stall_ms']:.0f} "
            f"| {r['stall_ms']:.0f} / {r['stall_running_ms']:.0f} / {r['stall_gc_ms']:.0f} "
            f"| {r['page_gets']} ({r['page_get_p50_ms']:.0f}) "
            f"| {r['chromium_loads']} ({r['chromium_load_p50_ms']:.0f})"
            + (f", {r['chromium_failures']} timed out" if r["chromium_failures"] else "")
            + f" | {r['page_rounds']} ({r['page_round_p50_ms']:.0f})"
            + (f", {r['page_round_failures']} failed" if r["page_round_failures"] else "")
            + " |"
        )
    return "\n".join(lines)


PHASES = {
    "baseline": {},  # Panel not started yet
    "cold": {"first_get_at": 1.0},  # Panel imported and started while the proxy serves
    "idle": {},  # Panel running, nobody looking
    "gets": {"gets": True},
    "chromium": {"chromium": True},  # the browser competes with the gateway for 2 cores
    "chromium-nice": {"chromium": True, "browser_nice": 10},  # ... or yields to it (a remote browser)
    "pages": {"pages": True},  # five pages loading at once, again and again (over --log-rows rows)
    "pages-nice": {"pages": True, "browser_nice": 10},
}


def seed_log(tmp: Path, rows: int, source: Path | None = None) -> str:
    """Copy replay_scale.py's ``rows``-row log (generated once, reused), or the log in
    ``source``, into the server's data directory; the page query that covers it (everything
    since its first row)."""
    if not rows and source is None:
        return ""
    import shutil

    if source is None:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from replay_scale import ensure_log

        source = ensure_log(Path(tempfile.gettempdir()) / "llmgw-replay-scale", rows)
    shutil.copytree(source / "log", tmp / "data" / "log")
    return "since=2000-01-01T00:00:00"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument(
        "--isolation", default="process",
        help="where Panel runs: process, thread, or both (comma-separated; sets LLMGW_DASHBOARD_ISOLATION)",
    )  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    parser.add_argument(
        "--log-rows", type=int, default=0, metavar="N",
        help="start the server on a copy of replay_scale.py's N-row log (pages then query it all)",
    )  # fmt: skip
    parser.add_argument(
        "--log-dir", type=Path, default=None,
        help="a data directory whose log/ is copied instead of replay_scale's (e.g. an older cached one)",
    )  # fmt: skip
    parser.add_argument(
        "--compact-timeout", type=float, default=600.0,
        help="with a copied log, wait up to this long for its compaction before the phases",
    )  # fmt: skip
    parser.add_argument(
        "--thread-probe", action="store_true",
        help="also record, during each in-process stall, how long every other thread of the server ran "
        "and waited for a core (schedstat: stall_other_threads_ms in the JSON rows)",
    )  # fmt: skip
    parser.add_argument(
        "--boost", type=int, default=0, metavar="N",
        help="run everything (server, Panel child, client, browser) N nice levels higher, so other "
        "workloads on a shared machine disturb the measurement less; relative priorities are kept (root)",
    )  # fmt: skip
    args = parser.parse_args()
    # stopped by SIGTERM (kill, a timeout): unwind, so the finally below stops the server it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.boost:
        os.nice(-args.boost)
    thread_flag = Path(tempfile.mkdtemp(prefix="llmgw-stall-probe-")) / "on"
    if args.thread_probe:
        os.environ["LLMGW_PROBE_THREADS"] = str(thread_flag)
    phases = args.phases.split(",")
    if "chromium" in phases and not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: skipping the chromium phase", file=sys.stderr)
        phases.remove("chromium")
    rows = []
    try:
        for isolation in args.isolation.split(","):
            os.environ["LLMGW_DASHBOARD_ISOLATION"] = isolation
            port = free_port()
            with tempfile.TemporaryDirectory(prefix="llmgw-stall-") as tmp:
                query = seed_log(Path(tmp), args.log_rows, args.log_dir)
                server = start_server(port, Path(tmp))
                try:
                    log = Path(tmp) / "server.log"
                    run_phase("warm-up", port, server.pid, log, 2)
                    if query:
                        waited = wait_compacted(server.pid, args.compact_timeout)
                        print(f"log compaction settled after {waited:.0f} s", flush=True)
                    thread_flag.touch()  # --thread-probe: from now on
                    for name in phases:
                        row = run_phase(f"{isolation}: {name}", port, server.pid, log, args.duration, query=query,
                                        **PHASES[name])  # fmt: skip
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                finally:
                    thread_flag.unlink(missing_ok=True)
                    server.terminate()
                    server.wait(timeout=60)
    finally:
        thread_flag.parent.rmdir()
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · nproc {os.cpu_count()} · {' '.join(platform.uname())}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
