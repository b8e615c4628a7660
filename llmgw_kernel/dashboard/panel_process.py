"""Panel's server in a child process: the proxy shares neither its GIL nor its heap.

Measured (docs/server.md, "Dashboards do not stall the proxy"): with Panel on a thread of
the proxy's process, every page load cost the proxy throughput (the GIL) and, worse,
Bokeh sessions grew the heap that the proxy's own garbage collections then scanned:
100–250 ms pauses. A child process removes both; only CPU cores are shared.

Parent side: :class:`PanelProcess` starts ``python -m llmgw_kernel.dashboard.panel_process``
and reads the internal port from its first stdout line. Child side: :func:`main` runs
:class:`~.panel_thread.PanelThread` and exits when its stdin closes, which also happens
when the parent dies, however it dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..logs import FORMATS, configure, format_in_force, stdio_as_events

log = logging.getLogger("llmgw.dashboard")

_READY = "LLMGW_PANEL_PORT"
_FAILED = "LLMGW_PANEL_ERROR"


class PanelProcess:
    """Starts and stops the dashboard server process (from the proxy's event loop)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        origins: list[str],
        policy_path: str | os.PathLike[str] | None = None,
        gateway_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.origins = origins
        self.policy_path = policy_path
        self.gateway_url = gateway_url
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> int:
        """Launch the child and return its port once it listens."""
        root = str(Path(__file__).resolve().parents[2])  # so the child imports this same code
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        args = [sys.executable, "-m", "llmgw_kernel.dashboard.panel_process", "--data-dir", str(self.data_dir)]
        args += ["--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())]
        args += ["--log-format", format_in_force()]  # the server's: JSON lines stay JSON lines
        for origin in self.origins:
            args += ["--origin", origin]
        if self.policy_path is not None:
            args += ["--policy", str(self.policy_path)]
        if self.gateway_url is not None:
            args += ["--gateway-url", self.gateway_url]
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            start_new_session=True,  # Ctrl+C reaches the proxy, which then stops us in order
        )  # fmt: skip
        assert self.proc.stdout is not None
        while True:
            line = (await self.proc.stdout.readline()).decode("utf-8", "replace").strip()
            if not line:
                code = await self.proc.wait()
                raise RuntimeError(f"the dashboard process exited with code {code} before it listened")
            if line.startswith(_READY):
                return int(line.split()[1])
            if line.startswith(_FAILED):
                await self.stop()
                raise RuntimeError(line[len(_FAILED) :].strip())

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the child's stdin (its signal to stop), wait, kill if it does not."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("the dashboard process did not stop within %.0f s; killing it", timeout)
            proc.kill()
            await proc.wait()


# -- child side --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from .panel_thread import PanelThread

    parser = argparse.ArgumentParser(description="llmgw dashboard server (started by llmgw serve)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--origin", action="append", default=[])
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=FORMATS, default=None, help="text or json (the server's)")
    parser.add_argument("--policy", default=None, help="the live policy file (routes, versions)")
    parser.add_argument("--gateway-url", default=None, help="the gateway's /health and /metrics (live state)")
    parser.add_argument("--nice", type=int, default=10, help="CPU priority below the proxy's")
    args = parser.parse_args(argv)
    # The pipe to the parent carries one line; anything else printed goes to stderr, so a
    # chatty library can never fill a pipe nobody reads and freeze the dashboards.
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args.nice:
        with contextlib.suppress(OSError):  # where the OS refuses, run at the same priority
            os.nice(args.nice)
    if configure(args.log_level, args.log_format, process="panel") == "json":
        stdio_as_events()  # a page's traceback or a library's print is a JSON line too
    ready = threading.Event()
    outcome: dict[str, object] = {}

    def on_ready(port: int | None, error: BaseException | None) -> None:
        outcome.update(port=port, error=error)
        ready.set()

    server = PanelThread(args.data_dir, args.origin, on_ready, args.policy, args.gateway_url)
    server.start()
    ready.wait()
    error = outcome["error"]
    if error is not None:
        report.write(f"{_FAILED} {type(error).__name__}: {error}".replace("\n", " ") + "\n")
        report.close()
        return 1
    settle_heap()
    report.write(f"{_READY} {outcome['port']}\n")
    report.close()
    sys.stdin.buffer.read()  # returns when the parent closes our stdin or exits
    server.stop()
    return 0


def settle_heap() -> None:
    """Move everything alive once the server listens (Panel, Bokeh, pandas, DuckDB, the pages'
    modules: ~180k objects that live as long as the process) out of the garbage collector's
    reach: every full collection — Panel runs one after sessions close, and allocation-heavy
    page builds trigger others — then scans only what the sessions made since (~80 ms less CPU
    per full collection). Garbage already unreachable is collected first, never frozen."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
