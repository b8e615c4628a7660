"""Labelled synthetic traffic for tuning the semantic cache, served through a real ``llmgw serve``.

    python -m llmgw_kernel.cache_traffic --data-dir llmgw-cache-data -n 400 --seed 0 [--threshold 0.9]

:func:`make_cache_log` writes a policy (one route, ``assistant``, in front of an *oracle*
upstream; exact + semantic cache; pricing), starts the oracle and the server on free loopback
ports, waits until the embedding model is loaded (``/health`` ``cache.models``), sends ``n``
chat requests with the official ``openai`` SDK, then stops the server with SIGTERM so every
row is flushed. The data dir then holds the request log and ``cache-traffic-policy.yaml``
(its oracle ``base_url`` points at a port that is closed again: fine for replay, which never
calls a provider).

The traffic (:func:`plan_traffic`, deterministic given ``seed``) draws intents from the
hand-written set in :mod:`llmgw_kernel.cache_traffic_intents` with a Zipf-like popularity:

- **exact repeats** of a prompt already sent by the same team (exact-cache hits);
- **paraphrases** of an intent already sent (what the semantic cache is for);
- **hard negatives**: the first request of an intent whose look-alike (swapped order,
  negation, another number, another name, one word swapped) was already sent by the team;
- the traffic profile's teams (:data:`llmgw_kernel.traffic_profile.TEAMS`, in proportion to
  their volume; ``metadata.team``: the cache namespace includes the team by default) and a
  share of streamed requests.

Every request carries ``metadata = {"intent", "team", "kind", "trap"}`` so the log holds its
ground truth: :func:`intent_labels` reads ``request_id -> intent`` back for labelled
precision. The oracle answers each prompt with its intent's own answer, lightly reworded per
prompt (answers to paraphrases are similar, never byte-identical), in the OpenAI wire format
with ``usage`` (and streams, with a usage chunk when asked).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from .cache_traffic_intents import INTENTS, Intent
from .traffic import started_server
from .traffic_profile import TEAMS as PROFILE_TEAMS

if TYPE_CHECKING:
    import duckdb
    from aiohttp import web

ROUTE = "assistant"
ORACLE_MODEL = "oracle-4o"
ORACLE_KEY_ENV = "LLMGW_ORACLE_KEY"
PRICING = {ORACLE_MODEL: {"input_per_1m": 2.5, "output_per_1m": 10.0}}
#: team -> relative share of requests: the traffic profile's teams, by weekday volume
TEAMS: dict[str, float] = {t.name: t.per_weekday for t in PROFILE_TEAMS}
POLICY_FILE = "cache-traffic-policy.yaml"
SERVE_LOG = "cache-traffic-serve.log"


# -- the traffic plan --------------------------------------------------------------------------


class PlannedRequest(NamedTuple):
    intent: str
    prompt: str
    team: str
    stream: bool
    kind: str  # first | repeat | paraphrase | negative (relative to what the team sent before)
    trap: str  # for kind == negative: order | negation | number | entity | word; else ""


def _families(intents: Sequence[Intent]) -> list[list[Intent]]:
    """Each base intent with the hard negatives designed against it."""
    by_base: dict[str, list[Intent]] = {}
    for it in intents:
        by_base.setdefault(it.negative_of or it.id, []).append(it)
    return [sorted(fam, key=lambda i: i.negative_of is not None) for fam in by_base.values()]


def plan_traffic(
    n: int,
    seed: int = 0,
    stream_share: float = 0.1,
    repeat_share: float = 0.3,
    probe_share: float = 0.1,
    teams: Mapping[str, float] = TEAMS,
    zipf_s: float = 1.1,
    intents: Sequence[Intent] = INTENTS,
) -> list[PlannedRequest]:
    """The requests :func:`make_cache_log` sends, in order (a pure function of its arguments).

    A request picks a team by ``teams`` shares and a family (an intent and its hard
    negatives) by Zipf popularity over a seeded ranking, then one member uniformly; with
    ``probe_share`` it instead probes a hard negative on purpose (a member the team has not
    sent yet, of a family it has). The prompt: with ``repeat_share`` one the team already sent
    for that intent, else any phrasing.
    """
    rng = random.Random(seed)
    families = _families(intents)
    rng.shuffle(families)
    weights = [1 / (rank + 1) ** zipf_s for rank in range(len(families))]
    team_names, team_weights = list(teams), list(teams.values())
    sent_prompts: dict[tuple[str, str], list[str]] = {}  # (team, intent) -> prompts sent
    plan: list[PlannedRequest] = []
    for _ in range(n):
        team = rng.choices(team_names, team_weights)[0]
        probes = [it for fam in families if any(sent_prompts.get((team, o.id)) for o in fam)
                  for it in fam if not sent_prompts.get((team, it.id))]  # fmt: skip
        if probes and rng.random() < probe_share:
            intent = rng.choice(probes)
            family = next(fam for fam in families if intent in fam)
        else:
            family = rng.choices(families, weights)[0]
            intent = rng.choice(family)
        stream = rng.random() < stream_share
        before = sent_prompts.setdefault((team, intent.id), [])
        use_before = bool(before) and rng.random() < repeat_share
        prompt = rng.choice(before) if use_before else rng.choice(intent.prompts)
        if prompt in before:
            kind, trap = "repeat", ""
        elif before:
            kind, trap = "paraphrase", ""
        elif any(sent_prompts.get((team, other.id)) for other in family if other.id != intent.id):
            kind = "negative"
            trap = intent.trap or next((o.trap or "" for o in family if o.negative_of == intent.id), "")
            if not trap:  # a base intent probed after one of its negatives: the negative's trap
                trap = next(o.trap for o in family if o.trap and sent_prompts.get((team, o.id)))  # type: ignore[misc]
        else:
            kind, trap = "first", ""
        before.append(prompt)
        plan.append(PlannedRequest(intent.id, prompt, team, stream, kind, trap))
    return plan


# -- the oracle upstream -----------------------------------------------------------------------

# small on purpose: MiniLM scores "Sure. <answer>" against "<answer>" as low as 0.74, which
# would make the sweep's label-free estimate (answer agreement >= 0.8) flag correct hits
_OPENERS = ("", "Short answer: ")
_CLOSERS = ("", " Hope this helps.")


def oracle_answer(prompt: str) -> tuple[str, str]:
    """(intent id, answer text) for a prompt: the intent's answer with an opener, a closer and
    "about"/"roughly" chosen by a hash of the prompt (same prompt, same words; paraphrases of an
    intent get answers that differ slightly)."""
    intent = _BY_PROMPT.get(prompt.strip())
    if intent is None:
        return "unknown", "The oracle has no answer for that prompt."
    h = hashlib.blake2b(prompt.encode(), digest_size=4).digest()
    text = intent.answer.replace("About", "Roughly").replace("about", "roughly") if h[2] % 2 else intent.answer
    return intent.id, _OPENERS[h[0] % len(_OPENERS)] + text + _CLOSERS[h[1] % len(_CLOSERS)]


_BY_PROMPT: dict[str, Intent] = {p: it for it in INTENTS for p in it.prompts}


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class Oracle:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 that answers by intent.

    Runs an aiohttp server on its own thread and loop; ``calls`` counts upstream requests per
    intent (cache hits never reach it).
    """

    def __init__(self) -> None:
        self.port = 0
        self.calls: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Oracle:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True, name="llmgw-cache-oracle").start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"the oracle upstream did not start: {failure[0] if failure else 'timeout'}")
        return self

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await request.json()
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not messages:
            return web.json_response(
                {"error": {"message": "'messages' must be a non-empty array", "type": "invalid_request_error",
                           "param": "messages", "code": None}}, status=400,
            )  # fmt: skip
        last = messages[-1].get("content") if isinstance(messages[-1], dict) else None
        intent, text = oracle_answer(last if isinstance(last, str) else "")
        self.calls[intent] += 1
        prompt_tokens = sum(_tokens(str(m.get("content") or "")) + 4 for m in messages if isinstance(m, dict))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": _tokens(text),
                 "total_tokens": prompt_tokens + _tokens(text)}  # fmt: skip
        head = {"id": "chatcmpl-oracle-" + hashlib.sha1(text.encode()).hexdigest()[:12], "created": int(time.time()),
                "model": body.get("model") or ORACLE_MODEL, "system_fingerprint": "fp_oracle"}  # fmt: skip
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                      "logprobs": None}  # fmt: skip
            return web.json_response({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        chunk = {**head, "object": "chat.completion.chunk"}
        words = text.split(" ")
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words)]
        for delta in deltas:
            await _sse(resp, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        await _sse(resp, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await _sse(resp, {**chunk, "choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        return resp


async def _sse(resp: web.StreamResponse, data: dict[str, Any]) -> None:
    await resp.write(b"data: " + json.dumps(data).encode() + b"\n\n")


# -- the policy and the run --------------------------------------------------------------------


def cache_policy(oracle_url: str, threshold: float = 0.9, ttl_s: float = 600, verify: bool = True) -> dict[str, Any]:
    """The policy document :func:`make_cache_log` serves: one route to the oracle, exact +
    semantic cache (namespaces by key and team, the default), the oracle model priced."""
    return {
        "providers": {"oracle": {"kind": "openai", "base_url": oracle_url, "api_key_env": ORACLE_KEY_ENV}},
        "routes": {ROUTE: {"targets": [{"provider": "oracle", "model": ORACLE_MODEL}]}},
        "cache": {
            "exact": {"ttl_s": ttl_s},
            "semantic": {"threshold": threshold, "ttl_s": ttl_s, "verify": verify},
        },
        "pricing": PRICING,
        "log": {"flush_ms": 100},
    }


@dataclass
class CacheTrafficReport:
    """What :func:`make_cache_log` sent and what the server said about each request."""

    data_dir: Path
    policy: Path
    sent: int
    ok: int
    errors: int
    kinds: dict[str, int] = field(default_factory=dict)  # first | repeat | paraphrase | negative
    traps: dict[str, int] = field(default_factory=dict)  # hard-negative probes by trap
    teams: dict[str, int] = field(default_factory=dict)
    streams: int = 0
    served: dict[str, int] = field(default_factory=dict)  # x-llmgw-cache: miss | hit | semantic-hit
    upstream_calls: int = 0
    model_wait_s: float = 0.0
    elapsed_s: float = 0.0


def make_cache_log(
    data_dir: str | os.PathLike[str],
    n: int = 400,
    seed: int = 0,
    policy_threshold: float = 0.9,
    stream_share: float = 0.1,
    repeat_share: float = 0.3,
    probe_share: float = 0.1,
    teams: Mapping[str, float] = TEAMS,
    verify: bool = True,
    ttl_s: float = 600,
    model_timeout_s: float = 90,
) -> CacheTrafficReport:
    """Serve :func:`plan_traffic` through a real server in front of the oracle; the log lands in
    ``data_dir`` next to the policy it was served with (``cache-traffic-policy.yaml``)."""
    t0 = time.monotonic()
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    plan = plan_traffic(n, seed, stream_share, repeat_share, probe_share, teams)
    oracle = Oracle().start()
    policy_path = data / POLICY_FILE
    policy_path.write_text(yaml.safe_dump(cache_policy(oracle.base_url, policy_threshold, ttl_s, verify),
                                          sort_keys=False))  # fmt: skip
    env = {**os.environ, ORACLE_KEY_ENV: "sk-oracle-local"}
    report = CacheTrafficReport(data, policy_path, sent=n, ok=0, errors=0)
    try:
        with started_server(policy_path, data, env=env, log_path=data / SERVE_LOG) as url:
            report.model_wait_s = wait_for_models(url, None, model_timeout_s)
            served = _send(url, plan)
    finally:
        oracle.stop()
    report.served = dict(Counter(s for s in served if s))
    report.ok = sum(1 for s in served if s is not None)
    report.errors = n - report.ok
    report.kinds = dict(Counter(r.kind for r in plan))
    report.traps = dict(Counter(r.trap for r in plan if r.kind == "negative"))
    report.teams = dict(Counter(r.team for r in plan))
    report.streams = sum(r.stream for r in plan)
    report.upstream_calls = sum(oracle.calls.values())
    report.elapsed_s = round(time.monotonic() - t0, 2)
    return report


def wait_for_models(url: str, proc: subprocess.Popen | None, timeout: float) -> float:
    """Seconds until every embedding model in a server's /health ``cache.models`` is ready
    (a RuntimeError if the server exits, a model fails to load, or ``timeout`` passes)."""
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"llmgw serve exited with status {proc.returncode}")
        try:
            health = httpx.get(f"{url}/health", timeout=2).json()
        except httpx.HTTPError:  # not listening yet
            time.sleep(0.1)
            continue
        models = (health.get("cache") or {}).get("models") or {}
        failed = [f"{m}: {s}" for m, s in models.items() if str(s).startswith("failed")]
        if failed:
            raise RuntimeError(f"semantic cache model failed to load: {failed}")
        if models and all(s == "ready" for s in models.values()):
            return round(time.monotonic() - t0, 2)
        time.sleep(0.1)
    raise RuntimeError(f"semantic cache model not ready within {timeout}s")


def _send(url: str, plan: Sequence[PlannedRequest]) -> list[str | None]:
    """Send the plan in order (one at a time, so every answer is cached before the next request);
    the x-llmgw-cache header of each (None: an error)."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-cache-traffic", max_retries=0, timeout=30)
    served: list[str | None] = []
    try:
        for req in plan:
            meta = {"intent": req.intent, "team": req.team, "kind": req.kind, "trap": req.trap}
            messages: Any = [{"role": "user", "content": req.prompt}]
            try:
                if req.stream:
                    streamed = client.chat.completions.with_raw_response.create(
                        model=ROUTE, messages=messages, metadata=meta, stream=True,
                        stream_options={"include_usage": True},
                    )  # fmt: skip
                    for _ in streamed.parse():
                        pass
                    headers = streamed.headers
                else:
                    raw = client.chat.completions.with_raw_response.create(
                        model=ROUTE, messages=messages, metadata=meta
                    )
                    raw.parse()
                    headers = raw.headers
                served.append(headers.get("x-llmgw-cache", "none"))
            except openai.APIError:
                served.append(None)
    finally:
        client.close()
    return served


def intent_labels(log: duckdb.DuckDBPyConnection | str | os.PathLike[str]) -> dict[str, str]:
    """``request_id -> metadata.intent`` for every logged request that carries one (the labels
    ``sweep_semantic_threshold(..., labels=...)`` takes)."""
    from .log.reader import open_log

    con = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    rows = con.execute(
        "SELECT request_id, json_extract_string(metadata, '$.intent') FROM requests "
        "WHERE json_extract_string(metadata, '$.intent') IS NOT NULL"
    ).fetchall()
    return {rid: intent for rid, intent in rows}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmgw_kernel.cache_traffic", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="where the log (and the policy it was served with) goes")
    ap.add_argument("-n", type=int, default=400, help="requests to send (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="traffic seed (default 0)")
    ap.add_argument("--threshold", type=float, default=0.9, help="semantic threshold of the served policy")
    ap.add_argument("--stream-share", type=float, default=0.1, help="share of streamed requests")
    ap.add_argument("--no-verify", action="store_true", help="serve with semantic verification off")
    args = ap.parse_args(argv)
    report = make_cache_log(args.data_dir, n=args.n, seed=args.seed, policy_threshold=args.threshold,
                            stream_share=args.stream_share, verify=not args.no_verify)  # fmt: skip
    print(json.dumps(asdict(report), default=str, indent=2))
    return 0 if report.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
