"""Shared fixtures: a fake OpenAI upstream over real HTTP, and real `llmgw serve` processes."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fake_anthropic import FakeAnthropic  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402

UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"
# headless Chromium for the dashboard pages and the notebooks in JupyterLab (.ci/run installs it)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a test module's pages (Playwright; one browser per module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def save_screenshots(page, name: str, folder: Path, widths: tuple[int, ...] = (1400, 800)) -> None:
    """Full-page screenshots of a Playwright ``page`` at each width, as ``<folder>/<name>-<width>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(500)  # the layout follows the width
        path = folder / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    """A fake Anthropic API for the module (a test module's own ``claude`` fixture overrides it);
    every request it got must have been valid."""
    fake = FakeAnthropic(UPSTREAM_KEY).start()
    yield fake
    fake.stop()
    assert not fake.invalid, fake.invalid


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(api_key=UPSTREAM_KEY).start()
    yield fake
    fake.stop()


def policy_for(upstream_url: str, **extra) -> dict:
    """A policy in front of the fake upstream: the DESIGN.md minimal shape plus test routes."""
    policy = {
        "providers": {
            "local": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LOCAL_API_KEY", "timeout_ms": 1500},
            "other": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LOCAL_API_KEY"},
            "nokey": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LLMGW_TEST_UNSET_KEY"},
            "demo": {"kind": "demo"},
        },
        "routes": {
            "gpt-4o-mini": {"targets": [{"provider": "local", "model": "gpt-4o-mini", "weight": 1}]},
            "split": {
                "targets": [
                    {"provider": "local", "model": "gpt-4o-mini", "weight": 70},
                    {"provider": "other", "model": "gpt-4o", "weight": 30},
                ]
            },
            "fallback": {
                "targets": [{"provider": "local", "model": "status-503"}, {"provider": "other", "model": "gpt-4o"}]
            },
            "broken-500": {"targets": [{"provider": "local", "model": "status-500"}]},
            "broken-400": {"targets": [{"provider": "local", "model": "status-400"}]},
            "broken-401": {"targets": [{"provider": "local", "model": "status-401"}]},
            "slow-json": {"targets": [{"provider": "local", "model": "slow-json"}]},
            "hang": {"targets": [{"provider": "local", "model": "hang"}]},
            "reset": {"targets": [{"provider": "local", "model": "reset"}]},
            "stream-cut": {
                "targets": [{"provider": "local", "model": "stream-cut-2"}, {"provider": "other", "model": "gpt-4o"}]
            },
            "stream-fallback": {
                "targets": [{"provider": "local", "model": "stream-cut-0"}, {"provider": "other", "model": "gpt-4o"}]
            },
            "slow-stream": {"targets": [{"provider": "local", "model": "slow-stream"}]},
            "no-key": {"targets": [{"provider": "nokey", "model": "gpt-4o-mini"}]},
            "demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]},
            "text-embedding-3-small": {"targets": [{"provider": "local", "model": "text-embedding-3-small"}]},
        },
        "log": {"flush_ms": 100},
        "server": {"max_request_bytes": 65536},
    }
    policy.update(extra)
    return policy


class Gateway:
    """A real `llmgw serve` subprocess."""

    def __init__(self, tmp: Path, policy: dict, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.policy_path = tmp / "policies" / "live.yaml"
        self.policy_path.parent.mkdir(parents=True, exist_ok=True)
        self.policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
        self.data_dir = tmp / "data"
        self.log_path = tmp / "serve.log"
        full_env = {**os.environ, "LOCAL_API_KEY": UPSTREAM_KEY, **(env or {})}
        full_env.pop("LLMGW_TEST_UNSET_KEY", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--policy", str(self.policy_path), "--data-dir", str(self.data_dir), "--drain-timeout", "10"],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=tmp,
        )  # fmt: skip
        self.wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def wait_ready(self, timeout: float = 120) -> None:  # start-up took > 30 s at load 16
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llmgw serve exited with {self.proc.returncode}:\n{self.server_log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"llmgw serve not ready in {timeout}s:\n{self.server_log()}")

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        code = sigterm_and_wait(self.proc, timeout)
        self._log.close()
        return code


def sigterm_and_wait(proc: subprocess.Popen, timeout: float) -> int:
    """Stop a server we started: SIGTERM (it drains), then SIGKILL after ``timeout`` s; its status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


DEMO_POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


def until(what: str, check, timeout: float = 60.0, every: float = 0.05):
    """Poll ``check`` until it returns something truthy, and return that; after ``timeout`` s an
    AssertionError naming ``what`` (a wait on a state, never a fixed sleep: CI's machine is loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def health_or_none(url: str) -> httpx.Response | None:
    """``GET /health`` of a server that may not answer yet (None then)."""
    try:
        return httpx.get(f"{url}/health", timeout=5)
    except httpx.HTTPError:
        return None


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``: ``4m``) mounted at ``mount`` while the block runs
    (a small disk to fill; needs root: the test is skipped where it cannot mount)."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def serve_demo(tmp_path: Path, data: Path, policy: dict | None = None) -> tuple[subprocess.Popen, str]:
    """A real ``llmgw serve`` of ``policy`` (default: the demo route) on ``data``, on a free port,
    without dashboards, its output in ``tmp_path/serve.log``; (process, base URL), not yet ready."""
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(policy or DEMO_POLICY))
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", str(tmp_path / "live.yaml"),
             "--data-dir", str(data), "--no-dashboards", "--drain-timeout", "5"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def log_worker_of(server: subprocess.Popen, timeout: float = 60.0) -> int:
    """The pid of ``server``'s log worker (its child running ``log/segment_worker``)."""

    def find() -> int | None:
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(server.pid)], capture_output=True, text=True
        )
        pids = [int(line.split()[0]) for line in out.stdout.splitlines() if "segment_worker" in line]
        return pids[0] if pids else None

    return until("the server's log worker process", find, timeout, every=0.2)


def logged_counts(data: Path) -> collections.Counter:
    """How many rows each request id has in the log of data directory ``data``."""
    from llmgw_kernel import open_log

    con = open_log(str(data))
    try:
        return collections.Counter(r[0] for r in con.execute("SELECT request_id FROM requests").fetchall())
    finally:
        con.close()


def ask_demo(url: str, text: str) -> str:
    """One chat completion on the demo route; its ``x-request-id`` (asserts a 200)."""
    body = {"model": "demo", "messages": [{"role": "user", "content": text}]}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=15)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"]


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gw"), policy_for(upstream.base_url))
    yield gw
    gw.terminate()


@pytest.fixture
def make_gateway(upstream: FakeOpenAI, tmp_path: Path) -> Iterator:
    started: list[Gateway] = []

    def make(policy: dict | None = None, env: dict[str, str] | None = None) -> Gateway:
        gw = Gateway(tmp_path / f"gw{len(started)}", policy or policy_for(upstream.base_url), env)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.terminate()


@pytest.fixture(scope="session")
def semantic_logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the semantic synthetic log, the same log with a check row after each semantic hit),
    built once per session (tests/semantic_logs.py) and only read by the tests that use it."""
    from semantic_logs import write_logs

    root = tmp_path_factory.mktemp("semantic-logs")
    return write_logs(root / "base", root / "checked")


@pytest.fixture(scope="session")
def scale_log_6000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """benchmarks/replay_scale.py's synthetic log at 6,000 rows (its default seed and chunks), built
    once per session and only read: tests/replay/test_fold_reads.py and test_fold_logged_scalars.py
    each generated the same log for themselves before."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import replay_scale

    d = tmp_path_factory.mktemp("scale-6000") / "log"
    replay_scale.generate(d, 6_000)
    return d


@pytest.fixture(scope="session")
def composed_served(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory):
    """tests/replay/test_composition.py's log, served by a real ``llmgw serve`` once per session
    and only read: test_composition.py and test_fold_kernel.py each served it for themselves before.
    (Here, not in a tests/replay/conftest.py: that would shadow this module for ``from conftest import``.)"""
    from test_composition import serve_composed  # tests/replay: on sys.path for the tests that use it

    return serve_composed(upstream.base_url, tmp_path_factory.mktemp("composed"))


def wait_for_rows(gw: Gateway, where: str, n: int = 1, timeout: float = 60.0) -> list[dict]:
    """Rows of the gateway's log matching `where`, once there are at least n (read via open_log).
    The deadline is generous (CI's loaded 2-core machine): the wait ends at the n-th row, so it
    costs nothing when rows come; n=0 reads the log as it is now."""
    from llmgw_kernel import open_log

    con = open_log(gw.data_dir)
    deadline = time.monotonic() + timeout
    while True:
        rel = con.sql(f"SELECT * FROM requests WHERE {where} ORDER BY ts")
        rows = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
        if len(rows) >= n or time.monotonic() > deadline:
            con.close()
            return rows
        time.sleep(0.05)


def wait_model_ready(gw, timeout: float = 240) -> dict:  # still loading after 90 s at load 17
    """/health's cache report once every embedding model is ready and the caches are restored
    from the log (fails at a model that failed to load, or after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]
        states = set(report["models"].values())
        if states == {"ready"} and report["restored"]:
            return report
        assert not any(s.startswith("failed") for s in states), report
        time.sleep(0.2)
    raise AssertionError(f"semantic model not ready: {report}")


def policy_reloads(url: str, result: str) -> float:
    """``llmgw_policy_reloads_total{result=...}`` as the gateway at ``url`` serves it on /metrics (0 before any)."""
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'llmgw_policy_reloads_total{{result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def reload_policy(gw, doc: dict) -> str:
    """Write ``doc`` as the live policy of gateway ``gw`` (``url``, ``policy_path``), wait until it
    is installed (``llmgw_policy_reloads_total{result="ok"}`` counts one more) and return its version."""
    from llmgw_kernel import load_policy

    before = policy_reloads(gw.url, "ok")
    gw.policy_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    until("the reload", lambda: policy_reloads(gw.url, "ok") > before)
    return load_policy(gw.policy_path).version


def responses_events(gw: Gateway, body: dict) -> tuple[list[tuple[str, dict]], str]:
    """(event name, data) of a streamed ``/v1/responses`` answer, as the bytes say, and the request id."""
    import json

    with httpx.stream("POST", f"{gw.base_url}/responses", json={**body, "stream": True}, timeout=30) as r:
        assert r.status_code == 200, r.read()
        text = r.read().decode()
        rid = r.headers["x-llmgw-request-id"]
    out = []
    for frame in text.split("\n\n"):
        if frame.strip():
            name, data = frame.split("\n", 1)
            out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out, rid


def chat_stream_lines(gw: Gateway, prefix: str, model: str) -> tuple[httpx.Response, list[str], str]:
    """A streamed chat completion's response, its non-empty lines, and the request id it was sent with."""
    import uuid

    rid = f"{prefix}-{uuid.uuid4().hex[:12]}"
    with httpx.stream(
        "POST", f"{gw.base_url}/chat/completions", headers={"x-request-id": rid, "authorization": "Bearer vk-any"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}, timeout=30,
    ) as r:  # fmt: skip
        return r, [line for line in r.iter_lines() if line], rid


# -- the replay kernels, compiled ahead (llmgw_kernel/replay/warmup.py) ----------------------------
# In a fresh clone the first test that replays >= 20,000 rows or sweeps thresholds compiles the
# numba kernels (~50 CPU s). A session that runs tests/cache or tests/replay starts the warm-up in
# the background when a kernel is not cached, and those tests wait for it (bounded: then a test
# compiles what it needs itself), so the compile overlaps the tests before them and is paid once.
# LLMGW_WARM_KERNELS=0 turns it off.
_WARMUP: list[subprocess.Popen] = []
_KERNEL_DIRS = ("cache", "replay")


def _uses_kernels(item: pytest.Item) -> bool:
    parts = Path(str(item.path)).parts
    return len(parts) >= 2 and parts[-2] in _KERNEL_DIRS and "tests" in parts


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The kernel tests after the other tests under tests/ (each group in its own order): the
    warm-up then compiles while those run, instead of the first kernel test waiting for it."""
    first, kernels, rest = [], [], []
    for item in items:
        parts = Path(str(item.path)).parts
        (kernels if _uses_kernels(item) else first if "tests" in parts else rest).append(item)
    items[:] = first + kernels + rest


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get("LLMGW_WARM_KERNELS", "1") == "0" or not any(_uses_kernels(i) for i in session.items):
        return
    cmd = [sys.executable, "-m", "llmgw_kernel.replay.warmup", "--if-cold"]
    _WARMUP.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _WARMUP and _uses_kernels(item) and _WARMUP[0].poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):  # then the test compiles what it needs
            _WARMUP[0].wait(timeout=240)  # within the tests' 300 s timeout


def pytest_sessionfinish(session: pytest.Session) -> None:
    for p in _WARMUP:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=30)
