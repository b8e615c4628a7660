"""How fast does each dashboard page render over a 1M-row request log?

Starts the dashboard server the way ``llmgw serve`` does (``python -m
llmgw_kernel.dashboard.panel_process``: its own process, DuckDB on 2 threads, nice 10) over
the 1M-request log of ``benchmarks/replay_scale.py`` (generated once into
``/tmp/llmgw-replay-scale``, reused read-only), with that log's policy file and no gateway
(live state unavailable). Then, per run, opens every page in headless Chromium with the
log's whole time range as the window (``?since=..&until=..``: 1,000,000 rows) and measures:

- **placeholder**: navigation start to a "Loading…" line (``[data-loading]``) or the filled
  page in the browser's document: since the page's HTML starts with one (the frame's
  ``BOOT_TEMPLATE``), its first bytes; before, the frame Panel builds (navigation links,
  filter bar and "Loading…");
- **first paint**: the browser's first contentful paint (``performance``'s
  ``first-contentful-paint``, from its navigation start): the placeholder, painted (by link,
  only for the first page: there is no new paint entry for a page swapped in);
- **ready**: navigation start to the page's status saying it is filled (``[data-ready]``:
  every query answered, every pane sent to the browser in the same message);
- **render**: navigation start to every figure and table of the page drawn (each Bokeh
  figure's view built and painted, each Tabulator built, each plain HTML table laid out:
  :data:`DRAWN_JS`) — what an operator sees; ``ready`` alone comes before the browser has
  built and painted them;
- **query**: the server's own time to fill the page (``data-took``: DuckDB + building panes);
- **CPU**: user + system seconds of the dashboard process during the load (all threads);
- **browser CPU**: user + system seconds of Chromium's processes during the load (parsing the
  cached scripts, building the Bokeh views, laying out and painting): on this benchmark's
  machine it shares the cores with the dashboard; an operator's browser runs elsewhere.

``--browser-cpus 0 --server-cpus 1`` pins Chromium (and this driver) and the dashboard process
to different cores (``sched_setaffinity``), as when an operator's browser runs on their own
machine, not the gateway's; the default is both on every core, shared.

The dashboard process runs at nice 10 as under ``llmgw serve`` (``--panel-nice`` changes it):
on a machine busy with other work its wall times stretch first; CPU seconds do not.

Each run starts a fresh dashboard process (cold caches: the query cache would otherwise
answer the next run). The pages are opened one after another in one browser context, as an
operator's browser would: a first page loads Bokeh's and Panel's JavaScript (~2.7 MB) once,
and the pages after it take it from the browser's cache. ``--cold`` opens each page in a
fresh context instead (every page downloads every script: a first visit's time, each time).
``--persistent-profile`` keeps the browser's profile on disk (a temporary directory), as an
operator's browser does, instead of Playwright's in-memory context: Chromium then keeps V8's code
cache with the cached scripts, so a page after the first does not compile Bokeh's and Panel's
~2.7 MB again (on this machine ~1.3 CPU s less per page load: docs/benchmarks.md, H14B).
``--navigate`` measures the other way an operator moves: the first page (overview) opened by
its URL, then every other page shown by clicking its link, which swaps the page within the
same document (no new page load; the filters carry): placeholder is then the click to the
"Loading…" of that page, render the click to the page filled.
Prints a table per page (median and spread over the runs).

    .venv/bin/python benchmarks/dashboard_pages.py                 # 3 runs
    .venv/bin/python benchmarks/dashboard_pages.py --runs 5 --markdown
    .venv/bin/python benchmarks/dashboard_pages.py --cold     # every page a first visit
    .venv/bin/python benchmarks/dashboard_pages.py --navigate # overview by URL, then by its links
    .venv/bin/python benchmarks/dashboard_pages.py --queries  # the routing page's queries in process
    .venv/bin/python benchmarks/dashboard_pages.py --browser-cpus 0 --server-cpus 1  # pinned apart

``--queries`` runs no browser: it times, in this process, the routing page's answer
(``routing_data.routing``) and the overview's whole fill, as ``benchmarks/dashboard_queries.py``
does (CPU seconds of the process, DuckDB on the dashboard's one thread, a fresh connection per
run so no answer is cached) over the log's whole range: the server side alone, for an A/B of
the SQL (``PYTHONPATH=<worktree>`` runs that checkout's queries).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
PAGES = ("overview", "cost", "budgets", "cache", "routing", "policy", "guardrails")
#: pages that look one request up (``--pages request,request-missing``, not in the default list):
#: the request page with the id of the log's middle row, and with an id that is in no row
LOOKUP_PAGES = ("request", "request-missing")
#: the extra query parameter each lookup page is opened with (set by main from the log)
LOOKUPS: dict[str, str] = {}


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants_cpu_s(name: bytes) -> float:
    """CPU seconds of this process's descendants whose command line contains ``name``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            if name in Path(f"/proc/{pid}/cmdline").read_bytes():
                total += cpu_s(pid)
        except (OSError, ValueError, IndexError):
            continue
    return total


#: the cores the dashboard process runs on (``--server-cpus``; None: wherever the kernel puts it)
SERVER_CPUS: set[int] | None = None
#: a browser profile on disk (``--persistent-profile``), as an operator's browser has, not Playwright's
#: in-memory context: its disk cache keeps V8's code cache, so a page's scripts are not compiled again
PERSISTENT = False


def start_panel(data_dir: Path, policy: Path, nice: int = 10) -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [sys.executable, "-m", "llmgw_kernel.dashboard.panel_process", "--data-dir", str(data_dir),
            "--policy", str(policy), "--origin", "*", "--log-level", "WARNING", "--nice", str(nice)]  # fmt: skip
    cpus = SERVER_CPUS
    # set in the child before it runs Python: every thread it starts (DuckDB's, Tornado's) inherits it
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, preexec_fn=pin)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("LLMGW_PANEL_PORT"):
        raise RuntimeError(f"the dashboard process did not start: {line}")
    return proc, int(line.split()[1])


def log_range(data_dir: Path) -> tuple[str, str, int]:
    from llmgw_kernel import open_log

    con = open_log(data_dir)
    row = con.execute("SELECT min(ts), max(ts), count(*) FROM requests").fetchone()
    con.close()
    assert row is not None
    lo, hi, n = row
    fmt = "%Y-%m-%dT%H:%M:%S"
    return lo.strftime(fmt), (hi.replace(microsecond=0) + timedelta(seconds=1)).strftime(fmt), n


def middle_request_id(data_dir: Path, rows: int) -> str:
    """The request id of the log's middle row (by time): the request page's lookup."""
    from llmgw_kernel import open_log

    con = open_log(data_dir)
    row = con.execute("SELECT request_id FROM requests ORDER BY ts, request_id LIMIT 1 OFFSET $n", {"n": rows // 2})
    found = row.fetchone()
    con.close()
    assert found is not None
    return str(found[0])


@contextmanager
def warmed(data_dir: Path, policy: Path, nice: int) -> Iterator[tuple[int, int, Any, Any]]:
    """A dashboard process and a browser whose cache holds the scripts: (pid, port, browser,
    context). One context = one browser cache: a first page pays for the JavaScript once, as an
    operator's browser does (browser.new_page() would open a fresh context each time)."""
    from playwright.sync_api import sync_playwright

    proc, port = start_panel(data_dir, policy, nice)
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="llmgw-chromium-") as profile:
            if PERSISTENT:
                context = p.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900}
                )
                browser: Any = context
            else:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 900})
            for _ in range(2 if PERSISTENT else 1):  # V8 caches a script's code on its second load
                warm = context.new_page()
                warm.goto(f"http://127.0.0.1:{port}/policy", timeout=120_000)
                warm.wait_for_selector("[data-ready]", state="attached", timeout=120_000)
                warm.close()
            yield proc.pid, port, browser, context
            browser.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


#: true once every figure and table of the page is built and drawn in the browser: each Bokeh
#: figure's view (among the views reachable from the document's roots: a page swapped out by a
#: link is not) finished and painted with no paint pending, each Tabulator's view built and not
#: redrawing, each plain HTML table and SVG chart laid out, and at least ``counts`` = [figures,
#: tables, HTML tables, SVG charts] of them, the numbers the page's ready line names (data-charts,
#: data-tables, data-html-tables, data-svg-charts), so a view not yet built cannot pass for drawn.
DRAWN_JS = r"""
([charts, tables, htmlTables, svgCharts]) => {
  if (!window.Bokeh || !Bokeh.index) return false;
  let plots = 0, grids = 0, plain = 0, svgs = 0;
  for (const v of Bokeh.index.all_views()) {
    const type = v.model.type || "";
    if (/(^|\.)HTML$/.test(type)) {  // plain HTML tables (html_table.py) and SVG charts (svg_chart.py), laid out
      const root = v.shadow_el || v.el;
      for (const t of root.querySelectorAll("table.llmgw-table"))
        if (t.isConnected && t.getClientRects().length > 0) plain++;
      for (const s of root.querySelectorAll("svg.llmgw-chart"))
        if (s.isConnected && s.getBoundingClientRect().width > 0) svgs++;
      continue;
    }
    const plot = type == "Plot" || type.endsWith("Figure"), grid = type.endsWith("DataTabulator");
    if (!plot && !grid) continue;
    if (!v.has_finished()) return false;
    if (plot && (v._needs_paint || !(v._render_count > 0))) return false;
    if (grid && v.is_drawing) return false;
    plot ? plots++ : grids++;
  }
  return plots >= charts && grids >= tables && plain >= htmlTables && svgs >= svgCharts;
}
"""

#: the browser's first contentful paint, s after navigation start (the placeholder, painted)
FIRST_PAINT_JS = """
() => { const e = performance.getEntriesByName("first-contentful-paint")[0]; return e ? e.startTime / 1000 : null }
"""

#: the page's figure and table views as the browser holds them, for the error when DRAWN_JS never holds
_STATE_JS = """
() => [...Bokeh.index.all_views()].filter((v) => /(Plot|Figure|DataTabulator)$/.test(v.model.type || "")).map((v) =>
  [v.model.type, {finished: v.has_finished(), needs_paint: v._needs_paint, painted: v._render_count,
                  drawing: v.is_drawing}])
"""


def _measured(
    page: Any, pid: int, t0: float, c0: float, b0: float, ready: str, first_paint: bool = True
) -> dict[str, float]:
    """Time to the placeholder, to ``ready`` (the page's status says it is filled) and to every
    figure and table drawn (render: what an operator sees; ``ready`` alone comes before the
    browser has built and painted them), the query time the page reports, and the CPU the
    dashboard and the browser spent since ``c0`` / ``b0``."""
    page.wait_for_selector(f"[data-loading], {ready}", state="attached", timeout=120_000)
    placeholder = time.perf_counter() - t0
    page.wait_for_selector(ready, state="attached", timeout=120_000)
    marked = time.perf_counter() - t0
    status = page.locator(ready)
    counts = [
        int(status.get_attribute(a) or 0) for a in ("data-charts", "data-tables", "data-html-tables", "data-svg-charts")
    ]
    try:
        page.wait_for_function(DRAWN_JS, arg=counts, polling="raf", timeout=120_000)
    except Exception as exc:
        raise RuntimeError(f"{page.url}: its {counts} figures/tables not drawn: {page.evaluate(_STATE_JS)}") from exc
    render = time.perf_counter() - t0
    took = float(status.get_attribute("data-took") or "nan")
    painted = page.evaluate(FIRST_PAINT_JS) if first_paint else None
    return {"placeholder_s": placeholder, "first_paint_s": float("nan") if painted is None else painted,
            "ready_s": marked, "render_s": render, "query_s": took,
            "cpu_s": cpu_s(pid) - c0, "browser_cpu_s": descendants_cpu_s(b"chromium") - b0}  # fmt: skip


def one_run(
    data_dir: Path, policy: Path, query: str, nice: int = 10, cold: bool = False, pages: tuple[str, ...] = PAGES
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with warmed(data_dir, policy, nice) as (pid, port, browser, context):
        for name in pages:
            page = browser.new_page(viewport={"width": 1400, "height": 900}) if cold else context.new_page()
            c0, b0 = cpu_s(pid), descendants_cpu_s(b"chromium")
            t0 = time.perf_counter()
            path = name.split("-")[0] if name in LOOKUP_PAGES else name
            page.goto(f"http://127.0.0.1:{port}/{path}?{query}{LOOKUPS.get(name, '')}", timeout=120_000)
            out[name] = _measured(page, pid, t0, c0, b0, "[data-ready]")
            page.close()
    return out


def navigate_run(data_dir: Path, policy: Path, query: str, nice: int = 10) -> dict[str, dict[str, float]]:
    """Overview by URL (after a warm-up page, as in :func:`one_run`), then each other page by
    clicking its link in the same document."""
    out: dict[str, dict[str, float]] = {}
    with warmed(data_dir, policy, nice) as (pid, port, _browser, context):
        page = context.new_page()
        for name in PAGES:
            c0, b0 = cpu_s(pid), descendants_cpu_s(b"chromium")
            t0 = time.perf_counter()
            if name == PAGES[0]:
                page.goto(f"http://127.0.0.1:{port}/{name}?{query}", timeout=120_000)
                page.evaluate("window.__llmgwDocument = 'first'")
            else:
                page.click(f'[data-nav="{name}"]')
            out[name] = _measured(page, pid, t0, c0, b0, f'[data-ready][data-page="{name}"]', name == PAGES[0])
            if page.evaluate("window.__llmgwDocument") != "first":
                raise RuntimeError(f"/{name} loaded a new document instead of swapping the page")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmgw-replay-scale")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="an existing log (with policy-live.yaml) instead of replay_scale's cached one")  # fmt: skip
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--panel-nice", type=int, default=10, help="the dashboard process's nice level (serve: 10)")
    ap.add_argument("--cold", action="store_true", help="each page in a fresh browser context (no cached scripts)")
    ap.add_argument("--navigate", action="store_true",
                    help="overview by URL, then every other page by its link (one document)")  # fmt: skip
    ap.add_argument("--pages", default=",".join(PAGES),
                    help="the pages to open by URL, in this order (comma-separated; not with --navigate); also "
                         "request (the log's middle request by id), request-missing (an id in no row)")  # fmt: skip
    ap.add_argument("--queries", action="store_true",
                    help="no browser: the routing queries and the overview's fill, CPU s in process")  # fmt: skip
    ap.add_argument(
        "--browser-cpus",
        type=_cpus,
        default=None,
        help="pin the browser (and this driver) to these cores, e.g. 0 or 0-1 (default: shared)",
    )
    ap.add_argument("--persistent-profile", action="store_true",
                    help="the browser profile on disk (code cache kept, as an operator's), not in memory")  # fmt: skip
    ap.add_argument("--server-cpus", type=_cpus, default=None,
                    help="pin the dashboard process to these cores, e.g. 1 (default: shared)")  # fmt: skip
    args = ap.parse_args(argv)
    allowed = os.sched_getaffinity(0)
    for flag, cpus in (("--browser-cpus", args.browser_cpus), ("--server-cpus", args.server_cpus)):
        if cpus is not None and not cpus <= allowed:
            ap.error(f"{flag}: cores {sorted(cpus - allowed)} are not among this process's {sorted(allowed)}")
    if args.persistent_profile and args.cold:
        ap.error("--cold opens a fresh context per page: not with --persistent-profile")
    global SERVER_CPUS, PERSISTENT
    SERVER_CPUS, PERSISTENT = args.server_cpus, args.persistent_profile
    if args.browser_cpus is not None:  # Playwright's driver and Chromium, started later, inherit it
        os.sched_setaffinity(0, args.browser_cpus)
    pages = tuple(p for p in args.pages.split(",") if p)
    if unknown := set(pages) - set(PAGES) - set(LOOKUP_PAGES):
        ap.error(f"no such page: {', '.join(sorted(unknown))}")
    if args.navigate and pages != PAGES:
        ap.error("--navigate opens every page (the overview by URL, then by links)")
    from replay_scale import ensure_log

    data_dir = args.data_dir or ensure_log(args.cache_dir, args.rows)
    policy = data_dir / "policy-live.yaml"
    since, until, n = log_range(data_dir)
    query = f"since={since}&until={until}"
    if set(pages) & set(LOOKUP_PAGES):
        LOOKUPS.update(request=f"&id={middle_request_id(data_dir, n)}", **{"request-missing": "&id=req_not_in_the_log"})
    print(f"log: {data_dir} ({n:,} rows, {since} .. {until}); load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} cores; {_mode(args)}; {_pinning(args)}; {_rollups_note(data_dir)}",
          flush=True)  # fmt: skip
    if args.queries:
        for name, values in query_runs(data_dir, args.runs).items():
            print(f"{name}: CPU s " + " / ".join(f"{v:.3f}" for v in sorted(values)), flush=True)
        return
    runs = []
    for i in range(args.runs):
        if args.navigate:
            runs.append(navigate_run(data_dir, policy, query, args.panel_nice))
        else:
            runs.append(one_run(data_dir, policy, query, args.panel_nice, args.cold, pages))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v['render_s']:.2f}s" for k, v in runs[-1].items()), flush=True)
    report(runs, args.markdown, pages)


def _rollups_note(data_dir: Path) -> str:
    """How many sealed segments the overview reads from stored entries (dashboard/rollups.py):
    built by an earlier dashboard process over this log, else by this run's in the background."""
    try:
        from llmgw_kernel.dashboard.rollups import Rollups
    except ImportError:  # a checkout before the entries
        return "overview rollups: none (before them)"
    rollups = Rollups(data_dir)
    if rollups.root is None:
        return "overview rollups: off (LLMGW_DASHBOARD_CACHE=off)"
    sealed = rollups.sealed(time.time())
    have = set(rollups._entries())
    return f"overview rollups: {sum(ident in have for _, ident in sealed)} of {len(sealed)} sealed segments"


def query_runs(data_dir: Path, runs: int) -> dict[str, list[float]]:
    """CPU seconds per run of the routing page's answer and the overview's fill (see ``--queries``):
    ``benchmarks/dashboard_queries.py``'s measurement, so the two scripts time the same thing."""
    sys.path.insert(0, str(Path(__file__).parent))
    from dashboard_queries import run

    return run(data_dir, runs)


def _cpus(text: str) -> set[int]:
    """``0``, ``0,1`` or ``0-1``: a set of core numbers."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of cores: {text!r} (e.g. 0 or 0,1 or 0-1)") from None
    if not cpus:
        raise argparse.ArgumentTypeError(f"no cores in {text!r}")
    return cpus


def _pinning(args: argparse.Namespace) -> str:
    if args.browser_cpus is None and args.server_cpus is None:
        return "browser and dashboard share the cores"

    def cores(cpus: set[int] | None) -> str:
        return "any core" if cpus is None else "core " + ",".join(map(str, sorted(cpus)))

    return f"browser on {cores(args.browser_cpus)}, dashboard on {cores(args.server_cpus)}"


def _mode(args: argparse.Namespace) -> str:
    if args.persistent_profile:
        return "warm browser cache, profile on disk (code cache)" + (", pages by links" if args.navigate else "")
    if args.navigate:
        return "overview by URL, the other pages by their links (one document)"
    return "cold (a fresh browser context per page)" if args.cold else "warm browser cache"


def report(runs: list[dict[str, dict[str, float]]], markdown: bool, pages: tuple[str, ...] = PAGES) -> None:
    cols = ("placeholder_s", "first_paint_s", "ready_s", "render_s", "query_s", "cpu_s", "browser_cpu_s")
    head = ["page", *(f"{c} (median, min–max)" for c in cols)]
    print("| " + " | ".join(head) + " |" if markdown else "  ".join(f"{h:<26}" for h in head))
    if markdown:
        print("|" + "---|" * len(head))
    for name in pages:
        cells = [name]
        for c in cols:
            values = [r[name][c] for r in runs]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})")
        print("| " + " | ".join(cells) + " |" if markdown else "  ".join(f"{x:<26}" for x in cells))


if __name__ == "__main__":
    main()
