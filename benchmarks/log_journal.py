"""What does the write-ahead journal cost per request on the event loop?

Times :meth:`LogWriter.append`'s journal part — ``journal.encode(record)`` plus one
``os.write`` to the ``O_APPEND`` journal file — in CPU time (``time.process_time``) for
records like the proxy's: a chat completion answered as JSON, one answered as a stream of
``--events`` SSE events, and an error. Prints µs per record (best of ``--rounds`` rounds of
``-n`` records) and the journal bytes per record.

    .venv/bin/python benchmarks/log_journal.py
    .venv/bin/python benchmarks/log_journal.py -n 20000 --rounds 5 --events 40
    .venv/bin/python benchmarks/log_journal.py --interleave-ms 0.5   # also as on a serving loop
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import orjson

from llmgw_kernel.log import RequestRecord
from llmgw_kernel.log import journal as wal


def chat_record(stream: bool, events: int) -> RequestRecord:
    rec = RequestRecord("req_0123456789abcdef01234567", time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome = "gpt-4o-mini", 200, "ok"
    rec.target, rec.provider = "local/gpt-4o-mini", "local"
    rec.upstream_model, rec.plan, rec.route_reason = "gpt-4o-mini", ("local/gpt-4o-mini",), "weighted draw 0.42"
    rec.attempts = [{"target": "local/gpt-4o-mini", "status": 200, "latency_ms": 12.5, "error": None}]
    rec.usage = {"prompt_tokens": 25, "completion_tokens": 40, "total_tokens": 65}
    rec.metadata, rec.key_id = {"team": "search", "feature": "qa"}, "sha256:0123456789ab"
    rec.user_agent = "OpenAI/Python"
    rec.latency_ms, rec.ttft_ms, rec.upstream_ms, rec.cost_usd = 20.1, 15.2, 18.3, 0.0000345
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello " * 20}]
    rec.request_raw = orjson.dumps({"model": "gpt-4o-mini", "messages": messages, "stream": stream})
    text = "Hello there, this is a fairly ordinary answer. " * 4
    if stream:
        rec.stream = True
        rec.stream_events = [
            orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                          "choices": [{"index": 0, "delta": {"content": text[i::events][:8]}, "finish_reason": None}]})
            for i in range(events)
        ]  # fmt: skip
    else:
        rec.response_raw = orjson.dumps({
            "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": rec.usage,
        })  # fmt: skip
    return rec


def error_record() -> RequestRecord:
    rec = RequestRecord("req_0123456789abcdef01234568", time.time(), "chat.completions")
    rec.status, rec.outcome, rec.error_type = 404, "client_error", "model_not_found"
    rec.error_message, rec.route = "The model 'nope' does not exist", "nope"
    rec.request_raw = b'{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}'
    rec.response_raw = b'{"error": {"message": "The model nope does not exist", "type": "invalid_request_error"}}'
    return rec


def measure(rec: RequestRecord, n: int, rounds: int) -> tuple[float, float, int]:
    """(best µs per record for encode + write, best µs for encode alone, frame bytes)."""
    best_all = best_encode = float("inf")
    with tempfile.TemporaryDirectory() as d:
        journal = wal.Journal(wal.journal_dir(d), 1)
        for _ in range(rounds):
            t0 = time.process_time()
            for _ in range(n):
                wal.encode(rec)
            best_encode = min(best_encode, (time.process_time() - t0) / n)
            t0 = time.process_time()
            for _ in range(n):
                journal.append(wal.encode(rec))
            best_all = min(best_all, (time.process_time() - t0) / n)
            journal.rotate(1).unlink()  # keep the file small between rounds
        os.close(journal._fd)
    return best_all * 1e6, best_encode * 1e6, len(wal.encode(rec))


def measure_interleaved(rec: RequestRecord, n: int, pause_s: float) -> tuple[float, float]:
    """(µs for encode, µs for encode + write) per record with a sleep between records, as on a
    serving loop (cold caches), minus the same loop's CPU with nothing in it."""
    import resource

    def cpu(step: object) -> float:
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        for _ in range(n):
            step()  # type: ignore[operator]
            time.sleep(pause_s)
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        return (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / n * 1e6

    with tempfile.TemporaryDirectory() as d:
        journal = wal.Journal(wal.journal_dir(d), 1)
        base = cpu(lambda: None)
        encode = cpu(lambda: wal.encode(rec)) - base
        both = cpu(lambda: journal.append(wal.encode(rec))) - base
        os.close(journal._fd)
    return encode, both


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10000, help="records per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--events", type=int, default=40, help="SSE events of the streamed record")
    ap.add_argument("--interleave-ms", type=float, default=0.0, help="also measure with this sleep between records")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; best of {args.rounds} rounds of {args.n} records")
    print("| record | journal bytes | encode µs | encode + os.write µs |")
    print("|---|---|---|---|")
    cases = [
        ("chat, JSON answer", chat_record(False, args.events)),
        (f"chat, streamed ({args.events} events)", chat_record(True, args.events)),
        ("404 error", error_record()),
    ]
    for name, rec in cases:
        total, encode, size = measure(rec, args.n, args.rounds)
        print(f"| {name} | {size} | {encode:.1f} | {total:.1f} |")
    if args.interleave_ms:
        print(f"\nwith {args.interleave_ms} ms sleeps between records (cold caches), {min(args.n, 3000)} records:")
        for name, rec in cases:
            encode, total = measure_interleaved(rec, min(args.n, 3000), args.interleave_ms / 1000)
            print(f"| {name} | encode {encode:.1f} µs | encode + os.write {total:.1f} µs |")


if __name__ == "__main__":
    main()
