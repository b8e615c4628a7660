"""Synthetic traffic served through a real ``llmgw serve`` — to make logs for notebooks,
demos and replay checks without any provider account.

    llmgw traffic --policy policies/live.yaml --data-dir llmgw-data -n 200

starts the server on a free loopback port (unless ``--url`` points at a running one), sends
``n`` chat requests spread over the policy's routes, then stops it with SIGTERM so every row
is flushed. The requests are the ``demo`` traffic profile's (:mod:`llmgw_kernel.traffic_profile`,
the one synthetic traffic model of notebooks, tests and ``llmgw traffic --profile``): teams
with their own keys, users and hours, plain and streamed requests, prompts that repeat and
paraphrase (later cache analyses have something to find). For targets that differ in latency
and reliability without any account, use the demo provider's model-name knobs
(``demo-x-slow-40ms``, ``demo-y-flaky-10pct``; see :mod:`llmgw_kernel.providers.demo`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrafficReport:
    sent: int
    ok: int
    errors: int
    data_dir: Path
    #: failed requests by reason (``"401 invalid_api_key"``), most frequent first when printed
    reasons: Counter[str] = field(default_factory=Counter)
    by_team: Counter[str] = field(default_factory=Counter)  # requests sent per team
    #: one message per reason, as the server gave it (never a secret: the gateway's errors echo none)
    examples: dict[str, str] = field(default_factory=dict)

    def failure_lines(self) -> list[str]:
        """``"  113  503 upstream_error: ..."`` per reason, most frequent first."""
        common = self.reasons.most_common()
        return [f"  {count:>5}  {reason}: {self.examples.get(reason, '')}" for reason, count in common]

    def record_failure(self, reason: str, message: str) -> None:
        self.errors += 1
        self.reasons[reason] += 1
        self.examples.setdefault(reason, " ".join(message.split())[:200])


def failure_of(response: Any) -> tuple[str, str]:
    """(reason, message) of a non-200 response: the status and the error's code or type from the
    OpenAI error body the gateway sends, else the status and the start of the body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        label = error.get("code") or error.get("type") or "error"
        return f"{response.status_code} {label}", str(error.get("message") or "")
    return f"{response.status_code}", response.text[:200]


def env_port() -> int | None:
    """``LLMGW_TRAFFIC_PORT``: the port a started server takes (notebooks and ``llmgw traffic``
    behind a firewall or a port-forward), instead of a free one picked at random."""
    text = os.environ.get("LLMGW_TRAFFIC_PORT", "").strip()
    if not text:
        return None
    # a value set but not a port is an error: ignored, the server took a random port (a port-forward
    # to the one asked for then reached nothing); 99999 bound 34463 (the OS takes it modulo 65536)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"LLMGW_TRAFFIC_PORT={text!r}: a port number, 1 to 65535")
    return int(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_synthetic_traffic(
    policy: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    n: int = 200,
    routes: Sequence[str] | None = None,
    seed: int = 7,
    stream_share: float | None = None,
    url: str | None = None,
    api_key: str | None = None,
    port: int | None = None,
    profile: str = "demo",
) -> TrafficReport:
    """Send ``n`` requests of the traffic ``profile`` (:mod:`llmgw_kernel.traffic_profile`: its
    teams, keys, users, time-of-day shape and prompt stream) to ``routes`` of ``policy``
    (default: all of them) through a real server (started here on ``port``, else
    ``$LLMGW_TRAFFIC_PORT``, else a free one, unless ``url`` is given). Requests present their
    team's synthetic key, or ``api_key`` when given (a virtual key: once keys exist, the gateway
    refuses requests without one)."""
    from .policy.load import load_policy
    from .traffic_profile import PROFILES, plan, send_plan

    prof = PROFILES[profile]
    if stream_share is not None:
        prof = dataclasses.replace(prof, stream_share=stream_share)
    planned = plan(prof, n, seed, routes=list(routes or load_policy(policy).routes))
    report = TrafficReport(n, 0, 0, Path(data_dir))
    with started_server(policy, data_dir, port, url) as base:
        send_plan(base, planned, report, api_key=api_key)
    return report


@contextlib.contextmanager
def started_server(
    policy: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    url: str | None = None,
    env: dict[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> Iterator[str]:
    """The base URL of a server serving ``policy`` on ``data_dir``: ``url`` as given, or one
    started here on ``port`` (else ``$LLMGW_TRAFFIC_PORT``, else a free port) with ``env``,
    its output in ``log_path`` (default: ``.traffic-serve-<port>.log`` beside the data
    directory), and stopped with SIGTERM on exit, so every row is flushed."""
    if url is not None:
        yield url
        return
    port = port or env_port() or _free_port()
    log_file = open(log_path or Path(data_dir).parent / f".traffic-serve-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--policy", str(policy), "--data-dir", str(data_dir), "--no-dashboards"],
        stdout=log_file, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, proc)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llmgw serve exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"llmgw serve was not ready within {timeout}s")
