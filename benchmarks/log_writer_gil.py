"""How long does the log writer thread stall the event loop while it encodes a flush?

An asyncio loop does what the proxy's does for the request log: it appends records (journal
frame + buffer, :meth:`LogWriter.append`) at a fixed rate (``--rate`` per second, records with
``--body-kb`` KB request and response bodies), while the writer thread flushes every
``--flush-ms`` (2k req/s at 500 ms: 1,000 rows per flush). Beside it a probe task measures the
loop's lag: how late ``asyncio.sleep(0.001)`` wakes. ``--burners N`` adds N CPU-bound processes
so that the OS deschedules threads mid-slice, as Chromium and the dashboard do on this 2-core
machine. Prints the lag p50/p99/max, the writer thread's CPU seconds per 1,000 rows and the
process's CPU seconds (not wall).

    .venv/bin/python benchmarks/log_writer_gil.py                     # 2k req/s, 4 KB bodies, 20 s
    .venv/bin/python benchmarks/log_writer_gil.py --burners 2 --seconds 30
    .venv/bin/python benchmarks/log_writer_gil.py --chunk 0           # encode a flush in one go (old)
    .venv/bin/python benchmarks/log_writer_gil.py --worker-process    # segments in a child (the server's)

``--worker-process`` runs the writer as the server does (``LogWriter(worker_process=True)``): rows
encoded, written and merged in a child process, whose CPU is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time

import orjson
from procstat import CLK_TCK, cpu_seconds

from llmgw_kernel.log import RequestRecord
from llmgw_kernel.log import writer as writer_mod
from llmgw_kernel.log.writer import LogWriter


def bodies(kb: int) -> tuple[bytes, bytes]:
    """A chat request and its JSON answer, each about ``kb`` KB."""
    text = ("The quick brown fox jumps over the lazy dog; " * (kb * 1024 // 46 + 1))[: kb * 1024]
    request = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
    response = orjson.dumps({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": kb * 256, "completion_tokens": kb * 256, "total_tokens": kb * 512},
    })  # fmt: skip
    return request, response


def record(i: int, request: bytes, response: bytes) -> RequestRecord:
    rec = RequestRecord(f"req_{i:024d}", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome = "gpt-4o-mini", 200, "ok"
    rec.target, rec.provider, rec.upstream_model = "local/gpt-4o-mini", "local", "gpt-4o-mini"
    rec.plan, rec.route_reason = ("local/gpt-4o-mini",), "weighted draw 0.42"
    rec.attempts = [{"target": "local/gpt-4o-mini", "status": 200, "latency_ms": 12.5, "error": None}]
    rec.usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    rec.metadata, rec.key_id, rec.user_agent = {"team": "search"}, "sha256:0123456789ab", "OpenAI/Python"
    rec.latency_ms, rec.ttft_ms, rec.upstream_ms, rec.cost_usd = 20.1, 15.2, 18.3, 0.0000345
    rec.request_raw, rec.response_raw = request, response
    return rec


def thread_cpu(native_id: int) -> float:
    with open(f"/proc/{os.getpid()}/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


async def run(writer: LogWriter, rate: int, seconds: float, kb: int, syscalls: int) -> list[float]:
    """Feed ``writer`` at ``rate`` rows/s for ``seconds``; return the probe's lags (s). Each
    probe step also makes ``syscalls`` GIL-releasing calls (a pipe write + read, as a loop
    iteration serving many sockets does): each must take the GIL back from the writer."""
    request, response = bodies(kb)
    rfd, wfd = os.pipe()
    lags: list[float] = []
    stop = time.perf_counter() + seconds

    async def feed() -> None:
        tick, i, start = 0.01, 0, time.perf_counter()
        while time.perf_counter() < stop:
            due = int((time.perf_counter() - start) * rate)
            while i < due:
                writer.append(record(i, request, response))
                i += 1
            await asyncio.sleep(tick)

    async def probe() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            for _ in range(syscalls):
                os.write(wfd, b"x")
                os.read(rfd, 1)
            lags.append(time.perf_counter() - t0 - 0.001)

    await asyncio.gather(feed(), probe())
    os.close(rfd)
    os.close(wfd)
    return lags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=2000, help="records appended per second")
    ap.add_argument("--flush-ms", type=int, default=500)
    ap.add_argument("--body-kb", type=int, default=4, help="size of the request and of the response body")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--syscalls", type=int, default=0, help="GIL-releasing calls per probe step")
    ap.add_argument("--writer-nice", type=int, default=0, help="nice the writer thread (setpriority on its tid)")
    ap.add_argument("--burners", type=int, default=0, help="CPU-bound neighbour processes")
    ap.add_argument("--chunk", type=int, default=None, help="rows encoded per GIL hold (0: the whole flush)")
    ap.add_argument("--handover", choices=["sched_yield", "sleep0"], default="sched_yield",
                    help="how the writer hands the GIL over between chunks")  # fmt: skip
    ap.add_argument("--worker-process", action="store_true", help="segments written and merged in a child process")
    args = ap.parse_args()
    if args.chunk is not None:
        writer_mod.ENCODE_CHUNK = args.chunk or 10**9
    if args.handover == "sleep0":
        writer_mod._yield_gil = lambda: time.sleep(0)
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for p in burners:
        p.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            writer = LogWriter(d, flush_ms=args.flush_ms, worker_process=args.worker_process)
            worker = writer._worker.pid if writer._worker is not None else None
            time.sleep(1.0)  # the worker's start-up (imports, the anchor) is not the steady state
            tid = writer._thread.native_id or 0
            if args.writer_nice:
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + args.writer_nice)
            cpu0, wcpu0 = cpu_seconds(os.getpid()), thread_cpu(tid)
            kid0 = cpu_seconds(worker) if worker else 0.0
            lags = asyncio.run(run(writer, args.rate, args.seconds, args.body_kb, args.syscalls))
            wcpu = thread_cpu(tid) - wcpu0
            cpu = cpu_seconds(os.getpid()) - cpu0
            kid = cpu_seconds(worker) - kid0 if worker else 0.0
            rows = writer.rows_written
            writer.close()
    finally:
        stop.set()
        for p in burners:
            p.join()
    lags_ms = sorted(x * 1000 for x in lags)
    p99 = lags_ms[int(len(lags_ms) * 0.99)]
    chunk = getattr(writer_mod, "ENCODE_CHUNK", "n/a")
    print(
        f"rate {args.rate}/s flush {args.flush_ms} ms body {args.body_kb} KB burners {args.burners} chunk {chunk} "
        f"{args.handover} syscalls {args.syscalls} writer-nice {args.writer_nice} worker-process {args.worker_process} "
        f"load {os.getloadavg()[0]:.2f}: loop lag p50 {statistics.median(lags_ms):.2f} ms p99 {p99:.2f} ms "
        f"max {lags_ms[-1]:.1f} ms (>20 ms: {sum(x > 20 for x in lags_ms)}); rows {rows}; "
        f"writer thread {wcpu / max(rows, 1) * 1000:.3f} CPU s/1k rows; process {cpu:.2f} CPU s; "
        f"worker process {kid:.2f} CPU s ({kid / max(rows, 1) * 1000:.3f} s/1k rows)"
    )


if __name__ == "__main__":
    main()
