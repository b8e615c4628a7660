"""What does llmgw cost per request? CPU, added latency, stream first byte, memory, start-up.

Starts a fast local OpenAI-compatible upstream (nginx when installed, else a small uvloop
server in its own process), then ``llmgw serve`` in front of it with a fresh data
directory (request log ON, bodies ``full``: the product as shipped), and measures:

* proxy CPU per request: utime+stime of the server process (all threads: event loop, log
  writer, DuckDB) from ``/proc/PID/stat`` over each load run, divided by requests;
* added latency: p50/p99 through the proxy minus p50/p99 straight to the upstream, at
  concurrency 1 and 16, for JSON and SSE responses (wrk when installed, else an aiohttp
  load generator in another process);
* stream first byte: time to the first ``data:`` event through the proxy vs direct;
* RSS (VmRSS/VmHWM) after start, after the load, and after one dashboard page load;
* ready time: process start to the first ``/health`` 200.

The proxy is pinned to one CPU and the upstream + load generator to the other (taskset,
like ``../shared/bench/gateway-peers``). On a shared machine prefer the CPU µs/request
column and compare runs by ratios; loadavg and the proxy core's busy % are recorded.

    .venv/bin/python benchmarks/proxy_overhead.py --out bench-results
    .venv/bin/python benchmarks/proxy_overhead.py --duration 5 --rounds 1 --upstream python --load python
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import CLK_TCK, busy_pct, cpu_busy, cpu_ticks, loadavg, mem_mb, thread_ticks  # noqa: E402
from scaffold import free_port, use_uvloop  # noqa: E402  (free_port: imported from here by other benchmarks)

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
API_KEY = "sk-bench-upstream-0123456789"

CHAT_JSON = (
    b'{"id":"chatcmpl-bench01","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed mock reply.",'
    b'"refusal":null},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":19,"completion_tokens":9,"total_tokens":28},"system_fingerprint":"fp_mock"}'
)
_CHUNK = (
    '{"id":"chatcmpl-bench02","object":"chat.completion.chunk","created":1700000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_mock","choices":[%s]}'
)


def stream_events(content_chunks: int = 3) -> list[str]:
    """An OpenAI chat stream: role chunk, ``content_chunks`` content chunks, finish, usage, [DONE]."""
    words = [" from the", " mock stream.", " More", " words", " here."]
    content = ["Hello"] + [words[i % len(words)] for i in range(content_chunks - 1)]
    chunk = '{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}'
    events = [_CHUNK % (chunk % ('{"role":"assistant","content":""}', "null"))]
    events += [_CHUNK % (chunk % (json.dumps({"content": c}), "null")) for c in content[:content_chunks]]
    events.append(_CHUNK % (chunk % ("{}", '"stop"')))
    events.append(_CHUNK.replace("[%s]}", '[],"usage":{"prompt_tokens":19,"completion_tokens":5,"total_tokens":24}}'))
    events.append("[DONE]")
    return events


STREAM_EVENTS = stream_events()
REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    "max_tokens": 32,
    "temperature": 0,
}
SCENARIOS = [("json", 1), ("json", 16), ("stream", 1), ("stream", 16)]
GOALS = {"cpu_us_per_req": 250.0, "added_p50_ms_c1": 0.5, "stream_first_byte_added_ms": 1.0, "rss_mb": 150.0,
         "ready_s": 3.0}  # fmt: skip


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def body_bytes(stream: bool, model: str = "gpt-4o-mini") -> bytes:
    body = {**REQUEST, "model": model, "stream": True} if stream else {**REQUEST, "model": model}
    return json.dumps(body, separators=(",", ":")).encode()


# -- upstreams ----------------------------------------------------------------------------------
def _nginx_conf(fast: int, stream: int, gap_ms: float, echo: bool) -> str:
    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    if echo:
        parts = ["echo_read_request_body;"]
        for i, event in enumerate(STREAM_EVENTS):
            parts.append(f"echo -n {quoted('data: ' + event)};")
            parts.append("echo;")  # newline
            parts.append("echo;")  # blank line: end of event
            parts.append("echo_flush;")
            if gap_ms > 0 and i < len(STREAM_EVENTS) - 1:
                parts.append(f"echo_sleep {gap_ms / 1000:.3f};")  # nginx-echo: at most 3 decimals
        stream_body = "\n            ".join(parts)
        load = f"load_module {ECHO_MODULE};"
    else:  # no echo module: the whole stream in one write
        sse = "".join(f"data: {e}\n\n" for e in STREAM_EVENTS)
        stream_body = f"return 200 {quoted(sse)};"
        load = ""
    return f"""{load}
daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_timeout 120s;
    keepalive_requests 100000000;
    client_body_buffer_size 64k;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{
        listen 127.0.0.1:{fast} backlog=4096;
        location / {{ default_type application/json; return 200 {quoted(CHAT_JSON.decode())}; }}
    }}
    server {{
        listen 127.0.0.1:{stream} backlog=4096;
        location / {{
            default_type text/event-stream;
            {stream_body}
        }}
    }}
}}
"""


def start_upstream(kind: str, workdir: Path, load_cpu: str, gap_ms: float) -> tuple[subprocess.Popen, dict]:
    fast, stream = free_port(), free_port()
    if kind == "nginx":
        ng = workdir / "nginx"
        for sub in ("logs", "tmp"):
            (ng / sub).mkdir(parents=True, exist_ok=True)
        echo = os.path.exists(ECHO_MODULE)
        conf = ng / "nginx.conf"
        conf.write_text(_nginx_conf(fast, stream, gap_ms, echo))
        cmd = ["taskset", "-c", load_cpu, "nginx", "-p", str(ng), "-c", str(conf), "-e", str(ng / "logs/error.log")]
        info = {"kind": "nginx", "stream_chunks": "flushed one by one" if echo else "one write (no echo module)"}
    else:
        cmd = ["taskset", "-c", load_cpu, sys.executable, __file__, "--_upstream", str(fast), str(stream), str(gap_ms),
               "--stream-chunks", str(len(STREAM_EVENTS) - 4)]  # fmt: skip
        info = {"kind": "python (uvloop, raw protocol)", "stream_chunks": "written one by one"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(workdir / "upstream.log", "wb"))  # noqa: SIM115
    wait_port(fast)
    wait_port(stream)
    info.update(fast=f"http://127.0.0.1:{fast}/v1", stream=f"http://127.0.0.1:{stream}/v1", gap_ms=gap_ms)
    return proc, info


def _serve_upstream(fast: int, stream: int, gap_ms: float) -> None:
    """A minimal keep-alive HTTP/1.1 server: fixed JSON on ``fast``, chunked SSE on ``stream``."""
    use_uvloop()
    json_response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(CHAT_JSON)
    ) + CHAT_JSON
    sse_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = []
    for e in STREAM_EVENTS:
        data = f"data: {e}\n\n".encode()
        chunks.append(b"%x\r\n%s\r\n" % (len(data), data))
    chunks.append(b"0\r\n\r\n")

    class Proto(asyncio.Protocol):
        def __init__(self, streaming: bool) -> None:
            self.streaming = streaming
            self.buf = b""
            self.need = -1
            self.queue: list[int] = []
            self.busy = False

        def connection_made(self, transport) -> None:  # type: ignore[override]
            self.t = transport

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                if self.need < 0:
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    head = self.buf[:end].lower()
                    m = re.search(rb"content-length:\s*(\d+)", head)
                    self.need = end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) < self.need:
                    return
                self.buf = self.buf[self.need :]
                self.need = -1
                self.respond()

        def respond(self) -> None:
            if not self.streaming:
                self.t.write(json_response)
                return
            if self.busy:
                self.queue.append(1)
                return
            self.busy = True
            self.t.write(sse_head)
            self.send_chunk(0)

        def send_chunk(self, i: int) -> None:
            if self.t.is_closing():
                return
            self.t.write(chunks[i])
            if i + 1 < len(chunks):
                loop = asyncio.get_running_loop()
                if i + 1 == len(chunks) - 1 or gap_ms <= 0:
                    self.send_chunk(i + 1)
                else:
                    loop.call_later(gap_ms / 1000, self.send_chunk, i + 1)
            else:
                self.busy = False
                if self.queue:
                    self.queue.pop()
                    self.respond()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: Proto(False), "127.0.0.1", fast, backlog=4096)
        await loop.create_server(lambda: Proto(True), "127.0.0.1", stream, backlog=4096)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- load generators ----------------------------------------------------------------------------
def _auth() -> str:
    """The Authorization header every load generator sends (a virtual key with --keyed)."""
    return os.environ.get("BENCH_AUTH") or "Bearer dummy"


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH") or "Bearer dummy"
wrk.body = os.getenv("BENCH_BODY")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def run_load(
    tool: str, url: str, conns: int, duration: float, stream: bool, load_cpu: str, lua: Path, model: str = "gpt-4o-mini"
) -> dict:
    body = body_bytes(stream, model).decode()
    if tool == "wrk":
        cmd = ["taskset", "-c", load_cpu, "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s",
               "--timeout", "5s", "--latency", "-s", str(lua), url]  # fmt: skip
    else:
        cmd = ["taskset", "-c", load_cpu, sys.executable, __file__, "--_load", url, str(conns), str(duration)]
        cmd += ["--_stream", "--_model", model] if stream else ["--_model", model]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCH_BODY": body},
                       timeout=duration + 60)  # fmt: skip
    m = re.search(r"BENCH_JSON (\{.*\})", p.stdout)
    if not m:
        raise RuntimeError(f"{tool} failed (rc={p.returncode}): {p.stdout[-400:]} {p.stderr[-400:]}")
    r = json.loads(m.group(1))
    r["rps"] = round(r["requests"] / (r["duration_us"] / 1e6), 1) if r["duration_us"] else 0.0
    return r


def _python_load(url: str, conns: int, duration: float, stream: bool, model: str) -> None:
    """aiohttp load generator: ``conns`` keep-alive connections, each one request at a time."""
    import aiohttp

    use_uvloop()
    body = body_bytes(stream, model)
    headers = {"Content-Type": "application/json", "Authorization": _auth()}
    latencies: list[float] = []
    errors = non2xx = 0

    async def worker(session: aiohttp.ClientSession, until: float) -> None:
        nonlocal errors, non2xx
        while time.perf_counter() < until:
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        non2xx += 1
            except Exception:  # noqa: BLE001 - counted, like wrk's socket errors
                errors += 1
                continue
            latencies.append(time.perf_counter() - t)

    async def main() -> float:
        connector = aiohttp.TCPConnector(limit=conns)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(session, t0 + duration) for _ in range(conns)))
            return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    lat = sorted(latencies) or [0.0]

    def pct(q: float) -> int:
        return int(lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6)

    out = {"requests": len(latencies), "duration_us": int(elapsed * 1e6), "errors": errors, "non2xx": non2xx,
           "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
           "mean_us": statistics.fmean(lat) * 1e6}  # fmt: skip
    print("BENCH_JSON " + json.dumps(out), flush=True)


def stream_probe(base: str, samples: int, model: str = "gpt-4o-mini") -> dict:
    """Time to the first ``data:`` event and to the end of the stream, on one keep-alive connection."""
    host, port = base.split("//")[1].split("/")[0].split(":")
    path = "/" + base.split("//")[1].split("/", 1)[1] + "/chat/completions"
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = body_bytes(True, model)
    headers = {"Content-Type": "application/json", "Authorization": _auth()}
    first, total, events = [], [], []
    for i in range(samples + 3):
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        t_first = None
        n = 0
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            if t_first is None and b"data:" in chunk:
                t_first = time.perf_counter()
            n += chunk.count(b"data:")
        t_end = time.perf_counter()
        if resp.status != 200:
            raise RuntimeError(f"stream probe: HTTP {resp.status}")
        if i >= 3:  # the first few warm the connection pool and code paths
            first.append(((t_first or t_end) - t0) * 1e3)
            total.append((t_end - t0) * 1e3)
            events.append(n)
    conn.close()
    return {"first_event_ms_p50": round(statistics.median(first), 3),
            "first_event_ms_p90": round(statistics.quantiles(first, n=10)[-1], 3) if len(first) > 2 else None,
            "last_byte_ms_p50": round(statistics.median(total), 3), "events": statistics.median(events),
            "samples": len(first)}  # fmt: skip


# -- the proxy ----------------------------------------------------------------------------------
POLICY = """\
description: proxy_overhead benchmark
providers:
  mock:
    kind: openai
    base_url: {fast}
    api_key_env: BENCH_UPSTREAM_KEY
  mockstream:
    kind: openai
    base_url: {stream}
    api_key_env: BENCH_UPSTREAM_KEY
routes:
  gpt-4o-mini:
    targets: [{{provider: mock, model: gpt-4o-mini}}]
  gpt-4o-mini-stream:
    targets: [{{provider: mockstream, model: gpt-4o-mini}}]
log:
  bodies: full
  flush_ms: 500
"""

# --keyed: budgets that never refuse in a benchmark but are all checked (and settled) per request
KEYED_POLICY = """\
pricing:
  gpt-4o-mini: {input_per_1m: 0.15, output_per_1m: 0.6}
budgets:
  limits:
    - {scope: global, usd: 1000000, window: day}
    - {scope: team, usd: 1000000, window: month}
"""


def create_bench_key(data_dir: Path) -> str:
    """A virtual key with its own budget, rpm and tpm (team ``bench``), created before the server
    starts (the store then enforces keys); returns the key."""
    sys.path.insert(0, str(REPO))
    from llmgw_kernel.keys.secrets import Secrets
    from llmgw_kernel.keys.store import KeySettings, KeyStore

    settings = KeySettings(name="bench", team="bench", budget_usd=1_000_000.0, rpm=10_000_000, tpm=10_000_000_000)
    _, key = KeyStore(data_dir, Secrets(data_dir).pepper).create(settings)
    return key


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Proxy:
    def __init__(
        self, workdir: Path, upstream: dict, proxy_cpu: str, extra_args: list[str], keyed: bool = False
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        policy = workdir / "policy.yaml"
        text = POLICY.format(fast=upstream["fast"], stream=upstream["stream"])
        policy.write_text(text + (KEYED_POLICY if keyed else ""))
        self.data_dir = workdir / "data"
        if keyed:
            os.environ["BENCH_AUTH"] = "Bearer " + create_bench_key(self.data_dir)
        cmd = ["taskset", "-c", proxy_cpu, sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--policy", str(policy), "--data-dir", str(self.data_dir),
               "--log-level", "warning", *extra_args]  # fmt: skip
        env = {**os.environ, "BENCH_UPSTREAM_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
        self.log_path = workdir / "llmgw.log"
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=open(self.log_path, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)  # fmt: skip
        self.pid = self.proc.pid  # taskset execs python: same pid
        deadline = t0 + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llmgw exited rc={self.proc.returncode}:\n{self.log_path.read_text()[-2000:]}")
            try:
                if http_get(self.port, "/health", 0.5)[0] == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError("llmgw not ready after 60 s")
            time.sleep(0.005)
        self.ready_s = time.perf_counter() - t0
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def health(self) -> dict:
        return json.loads(http_get(self.port, "/health", 5)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def check_proxy(proxy: Proxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=body_bytes(False),
        headers={"Content-Type": "application/json", "Authorization": _auth()},
    )
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200 or b'"usage"' not in data:
        raise RuntimeError(f"proxy smoke test failed: HTTP {resp.status} {data[:300]!r}")


# -- one round ------------------------------------------------------------------------------------
def one_round(args, upstream: dict, workdir: Path, lua: Path) -> dict:
    out: dict = {"loadavg_start": loadavg()}
    direct = {kind: upstream[kind] + "/chat/completions" for kind in ("fast", "stream")}
    for kind, conns in SCENARIOS:
        url = direct["stream" if kind == "stream" else "fast"]
        if args.warmup:
            run_load(args.load, url, conns, args.warmup, kind == "stream", args.load_cpu, lua)
        out[f"direct_{kind}_c{conns}"] = run_load(args.load, url, conns, args.duration, kind == "stream",
                                                  args.load_cpu, lua)  # fmt: skip
    out["direct_stream_probe"] = stream_probe(upstream["stream"], args.stream_samples)

    proxy = Proxy(workdir / "proxy", upstream, args.proxy_cpu, args.proxy_args, keyed=args.keyed)
    try:
        out["ready_s"] = round(proxy.ready_s, 3)
        out["mem_after_start"] = mem_mb(proxy.pid)
        check_proxy(proxy)
        url = proxy.base + "/chat/completions"
        flush_wait = 0.7  # the log flushes every 500 ms: let each run's rows be written inside its window
        for kind, conns in SCENARIOS:
            stream = kind == "stream"
            model = "gpt-4o-mini-stream" if stream else "gpt-4o-mini"
            if args.warmup:
                run_load(args.load, url, conns, args.warmup, stream, args.load_cpu, lua, model)
            time.sleep(flush_wait)
            c0, t0, th0 = cpu_busy(), cpu_ticks(proxy.pid), thread_ticks(proxy.pid)
            w = run_load(args.load, url, conns, args.duration, stream, args.load_cpu, lua, model)
            time.sleep(flush_wait)
            c1, t1, th1 = cpu_busy(), cpu_ticks(proxy.pid), thread_ticks(proxy.pid)
            cpu_s = (t1 - t0) / CLK_TCK
            n = max(w["requests"], 1)
            w["cpu_us_per_req"] = round(1e6 * cpu_s / n, 1)
            w["loop_thread_us_per_req"] = round(1e6 * (th1[0] - th0[0]) / CLK_TCK / n, 1)
            w["other_threads_us_per_req"] = round(1e6 * (th1[1] - th0[1]) / CLK_TCK / n, 1)
            w["proxy_cpu_pct"] = round(100 * cpu_s / (w["duration_us"] / 1e6 + 2 * flush_wait), 1)
            w["proxy_core_busy_pct"] = busy_pct(c0, c1, f"cpu{args.proxy_cpu}")
            w["mem_after"] = mem_mb(proxy.pid)
            d = out[f"direct_{kind}_c{conns}"]
            w["added_p50_ms"] = round((w["p50_us"] - d["p50_us"]) / 1e3, 3)
            w["added_p99_ms"] = round((w["p99_us"] - d["p99_us"]) / 1e3, 3)
            out[f"proxy_{kind}_c{conns}"] = w
            log(f"  {kind} c{conns}: {w['rps']:.0f} req/s, {w['cpu_us_per_req']} CPU µs/req "
                f"(loop {w['loop_thread_us_per_req']}, other threads {w['other_threads_us_per_req']}), "
                f"+{w['added_p50_ms']} ms p50, core busy {w['proxy_core_busy_pct']}%")  # fmt: skip
        out["proxy_stream_probe"] = stream_probe(proxy.base, args.stream_samples, "gpt-4o-mini-stream")
        out["stream_first_byte_added_ms"] = round(
            out["proxy_stream_probe"]["first_event_ms_p50"] - out["direct_stream_probe"]["first_event_ms_p50"], 3
        )
        out["mem_after_load"] = mem_mb(proxy.pid)
        time.sleep(0.8)
        h = proxy.health()
        out["log_rows_written"] = h.get("log", {}).get("rows_written")
        if args.dashboard_path:
            t = time.perf_counter()
            try:
                status, page = http_get(proxy.port, args.dashboard_path, timeout=180)
                out["dashboard_load"] = {"status": status, "bytes": len(page), "s": round(time.perf_counter() - t, 2)}
            except OSError as exc:
                out["dashboard_load"] = {"error": str(exc)}
            time.sleep(1.0)
            out["mem_after_dashboard"] = mem_mb(proxy.pid)
    finally:
        proxy.stop()
    out["loadavg_end"] = loadavg()
    return out


# -- report ---------------------------------------------------------------------------------------
def median_of(rounds: list[dict], *keys: str) -> float | None:
    vals = []
    for r in rounds:
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(v)
    return round(statistics.median(vals), 3) if vals else None


def summarize(rounds: list[dict]) -> dict:
    s: dict = {"scenarios": {}}
    for kind, conns in SCENARIOS:
        name = f"{kind}_c{conns}"
        s["scenarios"][name] = {
            "cpu_us_per_req": median_of(rounds, f"proxy_{name}", "cpu_us_per_req"),
            "cpu_us_per_req_all": [r[f"proxy_{name}"]["cpu_us_per_req"] for r in rounds],
            "loop_thread_us_per_req": median_of(rounds, f"proxy_{name}", "loop_thread_us_per_req"),
            "other_threads_us_per_req": median_of(rounds, f"proxy_{name}", "other_threads_us_per_req"),
            "rps": median_of(rounds, f"proxy_{name}", "rps"),
            "direct_rps": median_of(rounds, f"direct_{name}", "rps"),
            "p50_ms": (median_of(rounds, f"proxy_{name}", "p50_us") or 0) / 1e3,
            "p99_ms": (median_of(rounds, f"proxy_{name}", "p99_us") or 0) / 1e3,
            "direct_p50_ms": (median_of(rounds, f"direct_{name}", "p50_us") or 0) / 1e3,
            "direct_p99_ms": (median_of(rounds, f"direct_{name}", "p99_us") or 0) / 1e3,
            "added_p50_ms": median_of(rounds, f"proxy_{name}", "added_p50_ms"),
            "added_p99_ms": median_of(rounds, f"proxy_{name}", "added_p99_ms"),
            "proxy_core_busy_pct": median_of(rounds, f"proxy_{name}", "proxy_core_busy_pct"),
            "proxy_cpu_pct": median_of(rounds, f"proxy_{name}", "proxy_cpu_pct"),
            "errors": sum(r[f"proxy_{name}"]["errors"] + r[f"proxy_{name}"]["non2xx"] for r in rounds),
            "rss_mb_after": median_of(rounds, f"proxy_{name}", "mem_after", "VmRSS"),
            "hwm_mb_after": median_of(rounds, f"proxy_{name}", "mem_after", "VmHWM"),
        }
    s["stream_first_event_ms"] = median_of(rounds, "proxy_stream_probe", "first_event_ms_p50")
    s["stream_first_event_direct_ms"] = median_of(rounds, "direct_stream_probe", "first_event_ms_p50")
    s["stream_first_byte_added_ms"] = median_of(rounds, "stream_first_byte_added_ms")
    for key in ("mem_after_start", "mem_after_load", "mem_after_dashboard"):
        s[key] = {m: median_of(rounds, key, m) for m in ("VmRSS", "VmHWM", "VmRSS_tree", "VmHWM_tree")}
    s["ready_s"] = median_of(rounds, "ready_s")
    s["log_rows_written"] = [r.get("log_rows_written") for r in rounds]
    best_json_cpu = min(v for v in (s["scenarios"]["json_c1"]["cpu_us_per_req"],
                                    s["scenarios"]["json_c16"]["cpu_us_per_req"]) if v is not None)  # fmt: skip
    rss_before = max(v or 0 for v in (s["mem_after_load"]["VmHWM"], s["mem_after_start"]["VmHWM"]))
    s["goals"] = {
        "cpu_us_per_req (json, best of c1/c16)": (best_json_cpu, GOALS["cpu_us_per_req"]),
        "cpu_us_per_req (json, c1)": (s["scenarios"]["json_c1"]["cpu_us_per_req"], GOALS["cpu_us_per_req"]),
        "added p50 ms (json, c1)": (s["scenarios"]["json_c1"]["added_p50_ms"], GOALS["added_p50_ms_c1"]),
        "stream first event added ms": (s["stream_first_byte_added_ms"], GOALS["stream_first_byte_added_ms"]),
        "peak RSS MB before dashboards": (rss_before, GOALS["rss_mb"]),
        "ready s": (s["ready_s"], GOALS["ready_s"]),
    }
    return s


def render(s: dict, meta: dict) -> str:
    lines = [f"llmgw proxy overhead — {meta['started']} — {meta['rounds']} round(s) x {meta['duration']} s, "
             f"load: {meta['load']}, upstream: {meta['upstream']['kind']}, loadavg {meta['loadavg']}", ""]  # fmt: skip
    lines.append("| scenario | CPU µs/req | loop thread | other threads | req/s | direct req/s | p50 ms | "
                 "direct p50 | added p50 | p99 ms | "
                 "direct p99 | added p99 | proxy CPU % | core busy % | errors |")  # fmt: skip
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in s["scenarios"].items():
        lines.append(
            f"| {name} | {r['cpu_us_per_req']} | {r['loop_thread_us_per_req']} | {r['other_threads_us_per_req']} | "
            f"{r['rps']} | {r['direct_rps']} | {r['p50_ms']:.3f} | "
            f"{r['direct_p50_ms']:.3f} | {r['added_p50_ms']} | {r['p99_ms']:.3f} | {r['direct_p99_ms']:.3f} | "
            f"{r['added_p99_ms']} | {r['proxy_cpu_pct']} | {r['proxy_core_busy_pct']} | {r['errors']} |"
        )
    lines += ["", f"stream first data event: {s['stream_first_event_ms']} ms via llmgw, "
              f"{s['stream_first_event_direct_ms']} ms direct "
              f"(added {s['stream_first_byte_added_ms']} ms)"]  # fmt: skip
    lines.append("RSS after each scenario (proxy process, MB; scenarios run in table order): "
                 + ", ".join(f"{n} VmRSS {r['rss_mb_after']} / VmHWM {r['hwm_mb_after']}"
                             for n, r in s["scenarios"].items()))  # fmt: skip
    for key in ("mem_after_start", "mem_after_load", "mem_after_dashboard"):
        m = s[key]
        lines.append(f"{key}: proxy VmRSS {m['VmRSS']} MB, VmHWM {m['VmHWM']} MB; with child processes "
                     f"VmRSS {m['VmRSS_tree']} MB, VmHWM {m['VmHWM_tree']} MB")  # fmt: skip
    lines.append(f"ready (process start -> /health 200): {s['ready_s']} s; log rows written: {s['log_rows_written']}")
    lines += ["", "| goal | measured | target | met |", "|---|---:|---:|---|"]
    for name, (value, target) in s["goals"].items():
        met = "yes" if value is not None and value <= target else "no"
        lines.append(f"| {name} | {value} | <= {target} | {met} |")
    return "\n".join(lines) + "\n"


def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": sys.version.split()[0],
            "git": git.stdout.strip()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "bench-results", help="results directory (JSON + table)")
    ap.add_argument("--duration", type=float, default=10, help="seconds per measured load run")
    ap.add_argument("--warmup", type=float, default=2, help="unrecorded seconds before each run")
    ap.add_argument("--rounds", type=int, default=1, help="fresh proxy per round; medians are reported")
    ap.add_argument("--proxy-cpu", default="1")
    ap.add_argument("--load-cpu", default="0")
    ap.add_argument("--upstream", choices=("auto", "nginx", "python"), default="auto")
    ap.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--stream-gap-ms", type=float, default=1.0, help="pause between the upstream's SSE chunks")
    ap.add_argument("--stream-samples", type=int, default=30)
    ap.add_argument("--stream-chunks", type=int, default=3, help="content chunks per upstream stream "
                    "(plus role, finish and usage chunks and [DONE])")  # fmt: skip
    ap.add_argument("--dashboard-path", default="/", help="page GET after the load for the RSS with dashboards "
                    "('' to skip)")  # fmt: skip
    ap.add_argument(
        "--keyed",
        action="store_true",
        help="send a virtual key with its own budget, rpm and tpm, "
        "under a team and a global budget (every request admitted and settled)",
    )
    ap.add_argument("--proxy-args", nargs=argparse.REMAINDER, default=[], help="extra `llmgw serve` arguments")
    ap.add_argument("--_upstream", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--_load", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--_stream", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_model", default="gpt-4o-mini", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global STREAM_EVENTS
    STREAM_EVENTS = stream_events(args.stream_chunks)
    if args._upstream:
        _serve_upstream(int(args._upstream[0]), int(args._upstream[1]), float(args._upstream[2]))
        return
    if args._load:
        _python_load(args._load[0], int(args._load[1]), float(args._load[2]), args._stream, args._model)
        return
    if args.upstream == "auto":
        args.upstream = "nginx" if shutil.which("nginx") else "python"
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "python"
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is required")

    os.sched_setaffinity(0, {int(c) for c in args.load_cpu.split(",")})
    started = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"started": started, "machine": machine(), "duration": args.duration, "warmup": args.warmup,
            "stream_events": len(STREAM_EVENTS), "stream_gap_ms": args.stream_gap_ms,
            "rounds": args.rounds, "load": args.load, "proxy_cpu": args.proxy_cpu, "load_cpu": args.load_cpu,
            "loadavg": loadavg(), "argv": sys.argv}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="llmgw-bench-") as tmp:
        work = Path(tmp)
        lua = work / "chat.lua"
        lua.write_text(WRK_LUA)
        upstream_proc, upstream = start_upstream(args.upstream, work, args.load_cpu, args.stream_gap_ms)
        meta["upstream"] = upstream
        rounds = []
        try:
            for i in range(args.rounds):
                log(f"round {i + 1}/{args.rounds} (loadavg {loadavg()})")
                rounds.append(one_round(args, upstream, work / f"round{i}", lua))
        finally:
            upstream_proc.terminate()
            upstream_proc.wait(10)
    meta["loadavg_end"] = loadavg()
    summary = summarize(rounds)
    table = render(summary, meta)
    print(table)
    path = args.out / f"proxy_overhead-{started}.json"
    path.write_text(json.dumps({"meta": meta, "summary": summary, "rounds": rounds}, indent=1))
    (args.out / f"proxy_overhead-{started}.md").write_text(table)
    log(f"results in {path}")


if __name__ == "__main__":
    main()
