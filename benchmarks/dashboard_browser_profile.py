"""Where the browser's CPU goes on a dashboard page load (diagnostic, not a pass/fail benchmark).

Starts the dashboard process as ``dashboard_pages.py`` does (over a log with ``policy-live.yaml``),
warms a browser context's cache with one page, then opens each page by URL (the log's whole
range as the window) and prints, per page: render s and Chromium's CPU s (all its processes, as
``dashboard_pages.py``), the CPU s of each Chromium process kind and thread (from ``/proc``:
the renderer's main thread, its compile/worker pool, the browser process, the GPU process…),
CDP ``Performance.getMetrics`` for the page's renderer (TaskDuration, ScriptDuration,
LayoutDuration, RecalcStyleDuration: main-thread seconds; Nodes: the DOM's size), the Bokeh
models of the document by type, and (first run) each resource's decoded KB and transferred
bytes (0: from the browser's cache). ``--profile`` adds the CDP ``Profiler``'s self time by
script file and the top functions (sampled every 200 µs).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dashboard_browser_profile.py --data-dir DIR --runs 3
    PYTHONPATH=$PWD .venv/bin/python benchmarks/dashboard_browser_profile.py --data-dir DIR --pages cost --profile
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard_pages as dp  # noqa: E402

MODELS_JS = """() => { const c = {}; let n = 0; for (const d of Bokeh.documents) for (const m of d.all_models) { n++;
  c[m.type] = (c[m.type] || 0) + 1 } return [n, c] }"""
RESOURCES_JS = """() => performance.getEntriesByType('resource').map(e =>
  [e.name.split('/').slice(-1)[0].split('?')[0], Math.round(e.decodedBodySize / 1024), e.transferSize])"""


def by_thread() -> collections.Counter[str]:
    """CPU s of every Chromium thread, keyed ``<process kind>/<thread name>``."""
    out: collections.Counter[str] = collections.Counter()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = cmdline.read_bytes()
            if b"chromium" not in cmd:
                continue
            kind = m.group(1).decode() if (m := re.search(rb"--type=([a-z-]+)", cmd)) else "browser"
            for task in (cmdline.parent / "task").iterdir():
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                name = re.sub(r"\d+$", "N", (task / "comm").read_text().strip())
                out[f"{kind}/{name}"] += (int(fields[11]) + int(fields[12])) / 100
        except OSError:
            continue
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--pages", default="policy,overview")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    lo, hi, _n = dp.log_range(args.data_dir)
    proc, port = dp.start_panel(args.data_dir, args.data_dir / "policy-live.yaml", 10)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=dp.CHROMIUM, args=dp.CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            warm = context.new_page()
            warm.goto(f"http://127.0.0.1:{port}/policy", timeout=120_000)
            warm.wait_for_selector("[data-ready]", state="attached", timeout=120_000)
            warm.close()
            for run in range(args.runs):
                for name in args.pages.split(","):
                    page = context.new_page()
                    cdp = context.new_cdp_session(page)
                    cdp.send("Performance.enable")
                    if args.profile:
                        cdp.send("Profiler.enable")
                        cdp.send("Profiler.setSamplingInterval", {"interval": 200})
                        cdp.send("Profiler.start")
                    k0, b0, t0 = by_thread(), dp.descendants_cpu_s(b"chromium"), time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}/{name}?since={lo}&until={hi}", timeout=120_000)
                    m = dp._measured(page, proc.pid, t0, dp.cpu_s(proc.pid), b0, "[data-ready]")
                    k1 = by_thread()
                    met = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
                    models, types = page.evaluate(MODELS_JS)
                    print(f"{name}: render {m['render_s']:.2f} s, browser CPU {m['browser_cpu_s']:.2f} s | main: "
                          f"task {met['TaskDuration']:.2f} script {met['ScriptDuration']:.2f} layout "
                          f"{met['LayoutDuration']:.2f} style {met['RecalcStyleDuration']:.2f} | DOM nodes "
                          f"{met['Nodes']:.0f} | Bokeh models {models}", flush=True)  # fmt: skip
                    spent = sorted(((k, v - k0.get(k, 0)) for k, v in k1.items()), key=lambda kv: -kv[1])
                    print("  CPU s by process/thread:", ", ".join(f"{k} {v:.2f}" for k, v in spent if v >= 0.02))
                    if run == 0:
                        print("  models:", json.dumps(dict(sorted(types.items(), key=lambda kv: -kv[1]))))
                        print("  resources [name, KB, bytes transferred]:", page.evaluate(RESOURCES_JS))
                    if args.profile:
                        _print_profile(cdp.send("Profiler.stop")["profile"])
                    page.close()
            browser.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def _print_profile(profile: dict) -> None:
    nodes = {n["id"]: n["callFrame"] for n in profile["nodes"]}
    self_us: collections.Counter[tuple[str, str]] = collections.Counter()
    for sample, dt in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[sample]
        self_us[(frame["functionName"] or "(anonymous)", frame["url"].split("/")[-1].split("?")[0])] += dt
    files: collections.Counter[str] = collections.Counter()
    for (_fn, url), us in self_us.items():
        files[url or "(native)"] += us
    print("  self ms by file:", ", ".join(f"{k} {v / 1000:.0f}" for k, v in files.most_common(10)))
    print("  top self ms:", ", ".join(f"{f}@{u} {v / 1000:.0f}" for (f, u), v in self_us.most_common(15)))


if __name__ == "__main__":
    main()
