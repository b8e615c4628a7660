"""What does the guardrail stage cost? CPU per request on the event loop, and the streams' TTFT.

``stage`` (default): in process, CPU time (``time.process_time``) of the input stage
(:meth:`RequestGuard.check_request`, what the pipeline runs on the loop) per request, for

* ``typical``: a chat request of a system prompt and three turns (~700 characters, English
  and Vietnamese, one phone number and one CCCD: the redactions happen);
* ``4kb``: one 4 KB user prompt (mixed English/Vietnamese, two values to redact);
* ``16kb`` and ``64kb``: the same text repeated, to place the thread threshold;

with the issue's input checks (``pii`` redact in en+vi; ``injection`` flag when that detector
is installed), and the output stage over one streamed answer (1 000 characters in 4-character
chunks: :class:`StreamGuard`, per chunk and per answer). Each figure: ``--runs`` runs of
``-n`` requests, median and spread. The requests repeat one body, so the detectors' memos
(folded texts, phone validations) are emptied before each request; ``--warm`` keeps them, as
for a conversation that resends its earlier turns.

``ttft``: a real ``llmgw serve`` in front of a local upstream that streams a fixed answer in
4-character chunks every ``--chunk-ms`` ms (≈ a model at 4 chars/token); time to the first
non-empty content delta seen by the client, without and with an output ``pii`` check
(``--holdback`` characters held back), ``--samples`` streams each.

    .venv/bin/python benchmarks/guardrails_stage.py
    .venv/bin/python benchmarks/guardrails_stage.py ttft --chunk-ms 20 --samples 20
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from llmgw_kernel import load_policy
from llmgw_kernel.guardrails.request import RequestGuard

REPO = Path(__file__).resolve().parents[1]
EN = ("Our customer reported that the invoice for March was sent twice and asked for a refund to the "
      "original card. Please summarise the ticket history, check the shipping status of order 20231105 "
      "and draft a polite answer explaining the next steps and the expected timeline. ")  # fmt: skip
VI = ("Khách hàng phản ánh rằng đơn hàng giao chậm hai ngày và muốn được hoàn tiền phí vận chuyển. "
      "Vui lòng tóm tắt lịch sử hỗ trợ, kiểm tra trạng thái giao hàng và soạn câu trả lời lịch sự. ")  # fmt: skip
PII = "Liên hệ: SĐT 0912 345 678, CCCD 001203004567. "


PII_ONLY = False  # --pii-only: the input stage without the injection check


def input_checks() -> list[dict]:
    checks = [{"type": "pii", "action": "redact", "languages": ["en", "vi"]}]
    if not PII_ONLY and importlib.util.find_spec("llmgw_kernel.guardrails.injection") is not None:
        checks.append({"type": "injection", "action": "flag"})
    return checks


def rails(output: bool = False):
    guardrails = {"input": input_checks(), "output": [{"type": "pii", "action": "redact"}] if output else []}
    policy = load_policy({
        "providers": {"d": {"kind": "demo"}}, "routes": {"m": {"targets": [{"provider": "d", "model": "x"}]}},
        "guardrails": guardrails,
    })  # fmt: skip
    return policy._guardrails["m"]


def bodies() -> dict[str, bytes]:
    typical = {"model": "m", "messages": [
        {"role": "system", "content": "You are a helpful support assistant for an online shop. Answer briefly."},
        {"role": "user", "content": EN[:200] + PII},
        {"role": "assistant", "content": "Thanks, I found the order. Could you confirm the delivery address?"},
        {"role": "user", "content": VI[:180]},
    ]}  # fmt: skip
    text = ""
    while len(text.encode()) < 4096 - len(PII):
        text += EN + VI
    text = text.encode()[: 4096 - len(PII.encode()) * 2].decode("utf-8", "ignore")
    prompt = PII + text + PII
    out = {"typical": orjson.dumps(typical)}
    for name, times in (("4kb", 1), ("16kb", 4), ("64kb", 16)):
        out[name] = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": prompt * times}]})
    return out


def cpu_per_request(guardrails, raw: bytes, n: int, warm: bool = False) -> float:
    """CPU µs per request. Every request here is the same body, so unless ``warm`` the memos an
    earlier request filled (folded texts, phone validations) are emptied before each one: each
    request pays as if its text were new."""
    from llmgw_kernel.guardrails.pii.fold import fold
    from llmgw_kernel.guardrails.pii.numbers import _phone

    batch = [orjson.loads(raw) for _ in range(n)]  # the pipeline has the parsed body already
    t0 = time.process_time()
    for body in batch:
        if not warm:
            fold.cache_clear()
            _phone.cache_clear()
        RequestGuard(guardrails).check_request(body, "chat.completions")
    return (time.process_time() - t0) / n * 1e6


def cpu_per_stream(guardrails, n: int, chars: int = 1000, piece: int = 4) -> tuple[float, int]:
    text = ((EN + PII + VI) * 4)[:chars]
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [orjson.dumps({**head, "choices": [{"index": 0, "delta": {"content": text[i : i + piece]},
                                                 "finish_reason": None}]}) for i in range(0, chars, piece)]  # fmt: skip
    chunks.append(orjson.dumps({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    t0 = time.process_time()
    for _ in range(n):
        sg = RequestGuard(guardrails).stream()
        assert sg is not None
        for c in chunks:
            sg.feed(c)
        sg.close()
    return (time.process_time() - t0) / n * 1e6, len(chunks)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} µs  (runs: {', '.join(f'{v:.1f}' for v in values)})"


def stage(args: argparse.Namespace) -> None:
    guardrails = rails(output=True)
    print(f"input checks: {input_checks()}; output: pii redact, holdback {guardrails.holdback}")
    for name, raw in bodies().items():
        n = max(20, args.n // (1 if name in ("typical", "4kb") else 8))
        cpu_per_request(guardrails, raw, 20)  # warm up (detectors' lazy tables)
        runs = [cpu_per_request(guardrails, raw, n, args.warm) for _ in range(args.runs)]
        print(f"input stage, {name:8s} ({len(raw):6d} B body): {spread(runs)} per request")
    runs, count = [], 0
    for _ in range(args.runs):
        us, count = cpu_per_stream(guardrails, max(20, args.n // 20))
        runs.append(us)
    print(f"output stage, stream of {count} chunks (1000 chars): {spread(runs)} per answer, "
          f"{statistics.median(runs) / count:.1f} µs per chunk")  # fmt: skip


# -- ttft ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def upstream_server(port: int, chunk_ms: float) -> None:
    from aiohttp import web

    text = "Chào bạn! Số hotline của cửa hàng là 0912 345 678, chúng tôi hỗ trợ 24/7. " * 4
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        first = {**head, "choices": [role]}
        await resp.write(b"data: " + orjson.dumps(first) + b"\n\n")
        for i in range(0, len(text), 4):
            await asyncio.sleep(chunk_ms / 1000)
            c = {**head, "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
        done = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(b"data: " + orjson.dumps(done) + b"\n\ndata: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def ttft(args: argparse.Namespace) -> None:
    import httpx
    import yaml

    up_port, gw_port = free_port(), free_port()
    up = subprocess.Popen([sys.executable, __file__, "_upstream", str(up_port), str(args.chunk_ms)])
    tmp = Path(tempfile.mkdtemp(prefix="guard-ttft-"))
    target = [{"provider": "up", "model": "m"}]
    policy = {
        "providers": {"up": {"kind": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1", "stream_usage": False}},
        "routes": {"plain": {"targets": target},
                   "guarded": {"targets": target, "guardrails": {"output": [{"type": "pii", "action": "redact"}],
                                                                 "stream_holdback_chars": args.holdback}}},
    }  # fmt: skip
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    gw = subprocess.Popen([sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port",
                           str(gw_port), "--policy", str(tmp / "policy.yaml"), "--data-dir", str(tmp / "data"),
                           "--log-level", "warning"], cwd=REPO)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{gw_port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        results: dict[str, list[float]] = {"plain": [], "guarded": []}
        with httpx.Client(timeout=60) as client:
            for i in range(args.samples * 2):
                route = "plain" if i % 2 == 0 else "guarded"
                body = {"model": route, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
                t0 = time.perf_counter()
                with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
                    lines = r.iter_lines()
                    for line in lines:
                        choices = orjson.loads(line[6:])["choices"] if line.startswith("data: {") else []
                        if choices and choices[0].get("delta", {}).get("content"):
                            results[route].append((time.perf_counter() - t0) * 1000)
                            break
                    for _ in lines:  # read the rest of the stream
                        pass
        plain, guarded = statistics.median(results["plain"]), statistics.median(results["guarded"])
        print(f"upstream: 4-char chunks every {args.chunk_ms} ms; holdback {args.holdback} chars; "
              f"{args.samples} streams per route (interleaved)")  # fmt: skip
        worst = f"max {max(results['plain']):.1f} / {max(results['guarded']):.1f} ms"
        print(f"time to first content: plain p50 {plain:.1f} ms, with output pii check p50 {guarded:.1f} ms "
              f"(+{guarded - plain:.1f} ms); {worst}")  # fmt: skip
    finally:
        gw.terminate()
        gw.wait(30)
        up.terminate()
        up.wait(10)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        asyncio.run(upstream_server(int(sys.argv[2]), float(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", choices=("stage", "ttft"), default="stage")
    ap.add_argument("-n", type=int, default=2000, help="requests per run (stage)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk-ms", type=float, default=20.0, help="ttft: upstream gap between 4-char chunks")
    ap.add_argument("--holdback", type=int, default=64, help="ttft: stream_holdback_chars of the guarded route")
    ap.add_argument("--samples", type=int, default=20, help="ttft: streams per route")
    ap.add_argument("--pii-only", action="store_true", help="stage: input checks = pii only (no injection)")
    ap.add_argument("--warm", action="store_true", help="stage: keep the memos between requests (a resent text)")
    args = ap.parse_args()
    global PII_ONLY
    PII_ONLY = args.pii_only
    (ttft if args.mode == "ttft" else stage)(args)


if __name__ == "__main__":
    main()
