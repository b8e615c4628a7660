"""`llmgw serve --workers N` and replicas sharing a data directory, with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "state"))
from conftest import UPSTREAM_KEY, free_port, policy_for, sigterm_and_wait  # noqa: E402
from redis_server import RedisServer  # noqa: E402  (tests/state: a real redis-server on a free port)

from llmgw_kernel import open_log  # noqa: E402
from llmgw_kernel.log.segments import list_segments, log_dir  # noqa: E402

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Serve:
    """One `llmgw serve` process (with --workers, the supervisor)."""

    def __init__(self, tmp: Path, policy: dict, *args: str, data_dir: Path | None = None, env: dict | None = None):
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.policy_path = tmp / "live.yaml"
        self.policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
        self.data_dir = data_dir or tmp / "data"
        self.log_path = tmp / "serve.log"
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, "LOCAL_API_KEY": UPSTREAM_KEY, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(self.port), "--policy",
             str(self.policy_path), "--data-dir", str(self.data_dir), "--drain-timeout", "10", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=tmp,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> Serve:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.output()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready in {timeout} s:\n{self.output()}")

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self, timeout: float = 60) -> int:
        code = sigterm_and_wait(self.proc, timeout)
        self._log.close()
        return code


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc; zombies left out)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    found = children(pid)
    return found + [d for c in found for d in descendants(c)]


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def post(url: str, body: dict = CHAT) -> httpx.Response:
    """One request on a connection of its own (so the kernel picks a worker for each)."""
    with httpx.Client(timeout=30) as client:
        return client.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": "Bearer x"})


def rows_by_replica(data_dir: Path) -> dict[str, set[str]]:
    """request ids per replica series, read from the segment files themselves."""
    out: dict[str, set[str]] = {}
    con = duckdb.connect()
    for s in list_segments(log_dir(data_dir)):
        if s.lo > 0:
            ids = con.execute("SELECT request_id FROM read_parquet(?)", [str(s.path)]).fetchall()
            out.setdefault(s.replica, set()).update(r[0] for r in ids)
    return out


@pytest.fixture
def group(upstream, tmp_path):
    started: list[Serve] = []

    def make(policy: dict | None = None, *args: str, **kw) -> Serve:
        serve = Serve(tmp_path / f"s{len(started)}", policy or policy_for(upstream.base_url), *args, **kw)
        started.append(serve)
        return serve

    yield make
    for serve in started:
        serve.stop()


def test_two_workers_share_the_port_write_a_series_each_and_drain_on_sigterm(group, upstream):
    g = group(None, "--workers", "2", "--no-dashboards").wait_ready()
    assert len(g.workers()) == 2
    ids: list[str] = []

    def send(n: int) -> None:
        for _ in range(n):
            resp = post(g.url)
            assert resp.status_code == 200
            ids.append(resp.headers["x-request-id"])

    threads = [threading.Thread(target=send, args=(10,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slow: dict = {}
    in_flight = threading.Thread(target=lambda: slow.update(r=post(g.url, {**CHAT, "model": "slow-json"})))
    before = upstream.counts["slow-json"]
    in_flight.start()
    deadline = time.monotonic() + 60
    while upstream.counts["slow-json"] == before and time.monotonic() < deadline:
        time.sleep(0.01)  # the request is in flight: the upstream has it (and answers 1 s later)
    assert g.stop() == 0  # SIGTERM: every worker drains, flushes, exits 0
    in_flight.join()
    assert slow["r"].status_code == 200  # the request in flight was answered
    ids.append(slow["r"].headers["x-request-id"])
    series = rows_by_replica(g.data_dir)
    assert len(series) == 2, series.keys()  # each worker its own replica, its own segments
    assert all(series.values()), {k: len(v) for k, v in series.items()}  # both served
    logged = open_log(g.data_dir).execute("SELECT request_id FROM requests ORDER BY ts").fetchall()
    assert sorted(r[0] for r in logged) == sorted(ids)  # every answered request once, none twice
    from llmgw_kernel.replay import replay

    decided = replay(g.policy_path, g.data_dir).decisions  # replay reads every replica's series
    assert sorted(decided["request_id"]) == sorted(ids)


def test_metrics_at_any_worker_answer_for_all_of_them(group):
    g = group(None, "--workers", "2", "--no-dashboards").wait_ready()
    deadline = time.monotonic() + 60
    while True:
        with httpx.Client(timeout=10) as client:
            text = client.get(f"{g.url}/metrics").text
        if 'process_cpu_seconds_total{worker="1"}' in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 'process_cpu_seconds_total{worker="0"}' in text and 'process_cpu_seconds_total{worker="1"}' in text
    assert text.count("# TYPE process_cpu_seconds_total ") == 1  # one family, both workers' samples
    from prometheus_client.parser import text_string_to_metric_families

    workers = set()
    for family in text_string_to_metric_families(text):  # Prometheus's own parser reads it
        for sample in family.samples:
            workers.add(sample.labels["worker"])
    assert workers == {"0", "1"}


def test_workers_without_shared_state_are_refused_when_budgets_are_on(upstream, group):
    policy = policy_for(upstream.base_url, budgets={"limits": [{"scope": "global", "usd": 10, "window": "month"}]})
    g = group(policy, "--workers", "2", "--no-dashboards")
    assert g.proc.wait(60) == 2
    assert "needs shared state" in g.output() and "budgets" in g.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{g.url}/health", timeout=1)
    assert not (g.data_dir / "log").exists()  # refused before it wrote anything


def _started(output: str, pid: int) -> bool:
    """Worker ``pid``'s application has started: its uvicorn 'Started server process [pid]' line
    and an 'Application startup complete' after it. (Counting every worker's 'startup complete'
    lines waited out the whole deadline when a sibling's line had not come yet: 60 s a run.)"""
    at = output.find(f"Started server process [{pid}]")
    return at >= 0 and "Application startup complete" in output[at:]


def test_a_killed_worker_is_started_again_and_loses_no_row(group):
    g = group(None, "--workers", "2", "--no-dashboards").wait_ready()
    ids = [post(g.url).headers["x-request-id"] for _ in range(20)]
    ws = g.workers()
    victim = ws[0]
    os.kill(victim, signal.SIGKILL)  # rows it answered are in its journal only
    deadline = time.monotonic() + 60
    while True:  # one look at the processes per step (two could see the victim alive, then gone)
        now = g.workers()
        if (len(now) == 2 and victim not in now) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(now) == 2 and victim not in now, (ws, victim, now, g.output())
    (new,) = set(now) - set(ws)  # the worker started in the victim's place
    while not _started(g.output(), new) and time.monotonic() < deadline:
        time.sleep(0.1)  # the new worker serves
    ids += [post(g.url).headers["x-request-id"] for _ in range(10)]
    assert g.stop() == 0, g.output()
    logged = open_log(g.data_dir).execute("SELECT request_id FROM requests").fetchall()
    assert sorted(r[0] for r in logged) == sorted(ids), g.output()
    assert len(rows_by_replica(g.data_dir)) == 2, g.output()  # the restarted worker claimed the same slot back


def test_replicas_with_shared_state_share_a_data_directory(upstream, group, tmp_path):
    redis = RedisServer(tmp_path).start()
    try:
        shared = tmp_path / "shared-data"
        env = {"LLMGW_REDIS_URL": redis.url}
        a = group(None, "--no-dashboards", data_dir=shared, env=env).wait_ready()
        b = group(None, "--no-dashboards", data_dir=shared, env=env).wait_ready()
        ids = [post(s.url).headers["x-request-id"] for s in (a, b, a, b)]
        alone = group(None, "--no-dashboards", data_dir=shared)  # no shared state: refused
        assert alone.proc.wait(60) == 2
        assert "in use by llmgw serve" in alone.output()
        assert a.stop() == 0 and b.stop() == 0
        series = rows_by_replica(shared)
        assert len(series) == 2 and all(len(v) == 2 for v in series.values())
        logged = open_log(shared).execute("SELECT request_id FROM requests ORDER BY ts").fetchall()
        assert [r[0] for r in logged] == ids  # one table, in time order
    finally:
        redis.kill()


def test_a_server_with_shared_state_is_refused_while_one_without_holds_the_directory(upstream, group, tmp_path):
    redis = RedisServer(tmp_path).start()
    try:
        shared = tmp_path / "data"
        group(None, "--no-dashboards", data_dir=shared).wait_ready()
        late = group(None, "--no-dashboards", data_dir=shared, env={"LLMGW_REDIS_URL": redis.url})
        assert late.proc.wait(60) == 2
        assert "shared state" in late.output()
    finally:
        redis.kill()


def test_the_workers_share_one_dashboard_server(group):
    g = group(None, "--workers", "2").wait_ready()
    for _ in range(6):  # a connection each: both workers forward dashboard requests
        with httpx.Client(timeout=90) as client:
            assert client.get(f"{g.url}/").status_code == 200
    panels = [p for w in g.workers() for p in descendants(w) if "llmgw_kernel.dashboard.panel_process" in cmdline(p)]
    assert len(panels) == 1, panels
    assert g.stop() == 0


def test_workers_drain_and_exit_when_the_supervisor_is_killed(group):
    g = group(None, "--workers", "2", "--no-dashboards").wait_ready()
    workers = g.workers()
    ids = [post(g.url).headers["x-request-id"] for _ in range(10)]
    g.proc.send_signal(signal.SIGKILL)  # however the supervisor dies, its pipes close
    g.proc.wait(10)
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), g.output()
    logged = open_log(g.data_dir).execute("SELECT request_id FROM requests").fetchall()
    assert sorted(r[0] for r in logged) == sorted(ids)  # they flushed before exiting


def test_a_worker_refused_at_start_stops_the_group_with_its_message(group):
    g = group(None, "--workers", "2", "--no-dashboards", env={"LLMGW_MASTER_KEY": "not-a-fernet-key"})
    assert g.proc.wait(90) == 2  # as one server would: no endless restarts of a misconfigured worker
    assert "LLMGW_MASTER_KEY" in g.output()
