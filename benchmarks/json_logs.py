"""CPU per request event of the JSON access log (`llmgw serve --log-format json`).

The events are formatted in the request log's writer thread (never on the event loop), so
this is CPU the process spends per request beside serving it, not added latency.

    .venv/bin/python benchmarks/json_logs.py [--n 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.logs import access_events, configure


def _records(n: int) -> list[RequestRecord]:
    out = []
    for i in range(n):
        rec = RequestRecord(f"req_{i:024x}", time.time(), "chat.completions")
        rec.route, rec.target, rec.provider, rec.status, rec.outcome = (
            "gpt-4o-mini",
            "openai/gpt-4o-mini",
            "openai",
            200,
            "ok",
        )
        rec.latency_ms, rec.upstream_ms, rec.policy_version, rec.key_id = 812.5, 800.1, "p-0123456789ab", "sha256:abc"
        rec.usage = {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}
        rec.attempts = [{"target": rec.target, "status": 200}]
        rec.team, rec.cost_usd = "search", 0.000042
        out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    configure("info", "json")
    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    sink.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().handlers[:] = [sink]
    records = _records(args.n)
    per = []
    for _ in range(args.runs):
        t0 = time.process_time()
        access_events(records)
        per.append((time.process_time() - t0) / args.n * 1e6)
    print(
        f"JSON access event: {min(per):.1f} / {statistics.median(per):.1f} / {max(per):.1f} CPU µs per request "
        f"(min / median / max of {args.runs} runs, {args.n} events each; load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
