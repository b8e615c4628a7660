"""CPU cost of the read deadlines per request: uvicorn's httptools protocol vs llmgw's
``ReadDeadlineProtocol`` parsing the same keep-alive requests (no app, no sockets).

    .venv/bin/python benchmarks/read_deadlines_cost.py [-n 50000] [--rounds 5]

Each request arrives whole in one read (as nearly all do): the deadline protocol then arms
no timer, so the difference is its few extra Python calls per request. ``--split`` feeds
each request in two reads (headers, then body), so the body timer is armed and cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uvicorn.config import Config  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from llmgw_kernel.proxy.read_deadlines import read_deadline_protocol  # noqa: E402

BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    b"authorization: Bearer sk-test\r\ncontent-length: %d\r\n\r\n" % len(BODY)
) + BODY


class _Transport(asyncio.Transport):
    def get_extra_info(self, name, default=None):  # type: ignore[no-untyped-def]
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    pass


def _run(cls: type, n: int, split: bool) -> float:
    """CPU µs per request for ``n`` keep-alive requests on one connection."""
    import uvloop

    loop = uvloop.new_event_loop()  # as `llmgw serve` runs
    config = Config(_app, http="httptools", lifespan="off", log_config=None)
    config.load()
    proto = cls(config, ServerState(), {}, _loop=loop)
    proto._start_asgi_task = lambda cycle, app: None  # parse only: no app task
    proto.connection_made(_Transport())
    head, body = REQUEST[: -len(BODY)], BODY
    t0 = time.process_time()
    for _ in range(n):
        if split:
            proto.data_received(head)
            proto.data_received(body)
        else:
            proto.data_received(REQUEST)
        proto.cycle.response_complete = True  # as after a response: the next request starts at once
    spent = time.process_time() - t0
    proto.connection_lost(None)
    loop.close()
    return spent / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--split", action="store_true", help="headers and body in two reads")
    args = ap.parse_args()
    deadline = read_deadline_protocol(10, 60)
    plain, timed = [], []
    for _ in range(args.rounds):
        plain.append(_run(HttpToolsProtocol, args.n, args.split))
        timed.append(_run(deadline, args.n, args.split))
    print(
        f"CPU µs per request parsed (best of {args.rounds} x {args.n:,}; {'two reads' if args.split else 'one read'})"
    )
    print(f"  uvicorn HttpToolsProtocol : {min(plain):.2f}")
    print(f"  ReadDeadlineProtocol      : {min(timed):.2f}  (+{min(timed) - min(plain):.2f})")


if __name__ == "__main__":
    main()
