"""Seeded traffic with every replay stage on, through a real ``llmgw serve`` (parity tests and
``benchmarks/replay_parity.py``).

:func:`parity_policy` is a policy with virtual keys' budgets and rates, team/user budgets small
enough to run out mid-run, rpm and tpm limits, weighted routes with fallbacks, a route with
``rules``, an exact cache (and a semantic one on request) and upstream faults from the fake
OpenAI server (``chaos-P-tag``, ``chaosmid-P-tag``, 5xx, streams cut after the first byte).
:class:`ParityRun` starts the server (own data directory, admin token set), creates the keys
through the admin API (so keys are enforced) and plays :func:`request_mix` with the official
``openai`` and ``anthropic`` SDKs (raw ``httpx`` for malformed bodies and abandoned streams):
chat and streams (finished, cut by the upstream, abandoned by the client), ``/v1/messages``,
``/v1/embeddings``, unknown models, malformed JSON, bad, missing and revoked keys, a key not
allowed a route. A third of the way in a key is revoked, another one's settings change and,
if asked, a new policy version is promoted while traffic flows (the server hot-reloads it);
two thirds in, if asked, the server restarts on its data directory.

Every choice is a hash of (seed, request index): the same seed sends the same requests in
the same order (outcomes that depend on timing — rate windows, budget races under
concurrency — may differ between runs; parity does not care, replay reads what happened).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import yaml

from llmgw_kernel import open_log

sys.path.insert(0, str(Path(__file__).parent))
from conftest import UPSTREAM_KEY, Gateway  # noqa: E402

ADMIN_TOKEN = "admin-token-for-parity-5e2a"
PRICE = {"input_per_1m": 1000.0, "output_per_1m": 1000.0}  # the fake's 11 + 7 tokens cost $0.018
REQUEST_USD = 0.018
MAX_TOKENS = 20
CUT = 299  # what :class:`Sent` records for a stream that began with 200 and ended with an error event
ABANDONED = 499  # ... for a stream the client left
#: questions asked again word for word (exact hits) and in other words (semantic hits)
PARAPHRASES = (
    ("How can I convert Celsius to Fahrenheit?", "How do I convert Celsius into Fahrenheit?"),
    ("What is the capital city of France?", "What's the capital of France?"),
    ("How do I reset my email password?", "How can I reset the password of my email?"),
    ("Why is the sky blue?", "Why does the sky look blue?"),
    ("How long should I boil an egg?", "How long do I need to boil an egg?"),
    ("What is a good way to learn Python?", "What are good ways to learn Python?"),
)
PROMPTS = tuple(f"question number {i} about the weather in city {i % 7}" for i in range(16)) + tuple(
    text for pair in PARAPHRASES for text in pair
)
CHEAP = {"provider": "local", "model": "gpt-4o-mini"}
STRONG = {"provider": "other", "model": "gpt-4o"}


def parity_policy(upstream_url: str, requests: int, semantic: bool = False) -> dict[str, Any]:
    """Every stage on. Budgets scale with ``requests`` so that they run out part-way through."""
    cached: dict[str, Any] = {"exact": {"ttl_s": 600}, "max_temperature": 0.5}
    if semantic:
        cached["semantic"] = {"ttl_s": 600}  # the documented default threshold
    return {
        "providers": {
            "local": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LOCAL_API_KEY", "timeout_ms": 1500},
            "other": {"kind": "openai", "base_url": upstream_url, "api_key_env": "LOCAL_API_KEY"},
        },
        "routes": {
            "split": {"targets": [{**CHEAP, "weight": 70}, {**STRONG, "weight": 30}]},
            "ruled": {
                "targets": [CHEAP],
                "rules": [
                    {"name": "gold", "when": {"metadata": {"tier": "gold"}}, "targets": [STRONG]},
                    {"name": "long", "when": {"prompt_tokens_over": 20}, "targets": [STRONG, CHEAP]},
                ],
            },
            "fallback": {"targets": [{"provider": "local", "model": "status-503"}, STRONG]},
            "chaos": {"targets": [{"provider": "local", "model": "chaos-30-p", "timeout_ms": 400}, STRONG]},
            "chaos-stream": {"targets": [{"provider": "local", "model": "chaosmid-40-p", "timeout_ms": 400}, STRONG]},
            "stream-cut": {"targets": [{"provider": "local", "model": "stream-cut-2"}]},
            "slow-stream": {"targets": [{"provider": "local", "model": "slow-stream"}]},
            "broken": {"targets": [{"provider": "local", "model": "status-500"}]},
            "limited": {"targets": [CHEAP]},
            "cached": {"targets": [CHEAP], "cache": cached},
            # entries expire and are evicted within a run (TTL and FIFO eviction replayed)
            "cached-short": {"targets": [CHEAP], "cache": {"exact": {"ttl_s": 2, "max_entries": 6}}},
            "sticky": {"targets": [{**CHEAP, "weight": 50}, {**STRONG, "weight": 50}], "sticky": "user"},
            "text-embedding-3-small": {"targets": [{"provider": "local", "model": "text-embedding-3-small"}]},
        },
        "pricing": {"gpt-4o-mini": PRICE, "gpt-4o": PRICE, "text-embedding-3-small": PRICE},
        "budgets": {
            "timezone": "UTC",
            "default_max_tokens": 50,
            "limits": [
                {"scope": "team", "name": "search", "usd": round(REQUEST_USD * requests * 0.12, 4), "window": "day"},
                {"scope": "user", "name": "u-bob", "usd": round(REQUEST_USD * requests * 0.05, 4), "window": "month"},
                {"scope": "team", "name": "ads", "usd": round(REQUEST_USD * requests * 0.02, 4), "mode": "soft"},
            ],
        },
        "rate_limits": [
            {"scope": "route", "name": "limited", "rpm": 6},
            {"scope": "team", "name": "ads", "tpm": 900},
        ],
        "log": {"flush_ms": 100},
        "server": {"max_request_bytes": 65536},
    }


def reloaded_policy(doc: dict[str, Any], limits: bool = False) -> dict[str, Any]:
    """The version promoted during the run: new weights and a new rule (``limits``: and new limits)."""
    new = yaml.safe_load(yaml.safe_dump(doc))
    new["routes"]["split"]["targets"] = [{**CHEAP, "weight": 20}, {**STRONG, "weight": 80}]
    new["routes"]["ruled"]["rules"].insert(
        0, {"name": "eu", "when": {"metadata": {"region": "eu"}}, "targets": [STRONG]}
    )
    if limits:
        new["rate_limits"][0]["rpm"] = 9
        new["budgets"]["limits"][0]["usd"] = round(new["budgets"]["limits"][0]["usd"] * 1.5, 4)
    return new


# -- the request mix ---------------------------------------------------------------------------

#: kind -> weight (per 1,000 requests, roughly)
KINDS: dict[str, int] = {
    "split": 150, "split-stream": 60, "cached": 170, "cached-stream": 40, "cached-control": 30, "cached-hot": 20,
    "ruled": 60, "fallback": 40, "chaos": 60, "chaos-stream": 40, "stream-cut": 15, "abandon": 12, "limited": 50,
    "messages": 40, "messages-stream": 20, "cached-short": 40, "sticky": 30, "embeddings": 40, "unknown-model": 20,
    "malformed": 20, "schema": 10, "messages-invalid": 8, "bad-cache-header": 8, "oversized": 6, "bad-key": 15, "no-key": 5,
    "revoked-key": 15, "not-allowed": 20, "broken": 15,
}  # fmt: skip
#: the keys requests are spread over (created through the admin API before any traffic)
KEYS: dict[str, dict[str, Any]] = {
    "alpha": {"team": "search", "user": "u-alice"},  # + a key budget scaled to the run
    "beta": {"team": "search", "user": "u-bob"},
    "gamma": {"team": "ads", "user": "u-carol", "rpm": 40},
    "delta": {},  # no team, no user: only route-wide limits apply
    "narrow": {"team": "ads", "models": ["split", "cached"]},
    "doomed": {"team": "search", "user": "u-dan"},  # revoked a third of the way in
}
USABLE = ("alpha", "beta", "gamma", "delta", "narrow", "doomed")
ALWAYS_VALID = (
    "oversized",
    "bad-cache-header",
    "messages-invalid",
)  # rare kinds sent with a key never refused, so they reach their check


@dataclass(frozen=True)
class Spec:
    """One request of the mix: what to send, with which key, which prompt."""

    i: int
    kind: str
    key: str
    prompt: str
    meta: dict[str, str]


def _draw(seed: int, i: int, what: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}|{i}|{what}".encode(), digest_size=8).digest(), "big")


def request_mix(seed: int, n: int) -> list[Spec]:
    """``n`` requests, every choice a hash of (seed, index)."""
    kinds = list(KINDS)
    total = sum(KINDS.values())
    out = []
    for i in range(n):
        point = _draw(seed, i, "kind") % total
        for kind in kinds:
            point -= KINDS[kind]
            if point < 0:
                break
        key = USABLE[_draw(seed, i, "key") % len(USABLE)] if kind not in ALWAYS_VALID else "delta"
        prompt = PROMPTS[_draw(seed, i, "prompt") % len(PROMPTS)]
        if kind == "ruled" and _draw(seed, i, "long") % 3 == 0:
            prompt = prompt + " and please explain it at great length with many details"
        meta = {}
        tier = _draw(seed, i, "meta") % 6
        if tier == 0:
            meta["tier"] = "gold"
        elif tier == 1:
            meta["region"] = "eu"
        out.append(Spec(i, kind, key, prompt, meta))
    return out


# -- sending -----------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the client saw of one request."""

    spec: Spec
    status: int
    request_id: str | None


@dataclass
class Clients:
    """SDK clients per key (one set per worker thread: the SDKs' pools are not shared)."""

    base: str
    secrets: dict[str, str]
    _oa: dict[str, openai.OpenAI] = field(default_factory=dict)
    _an: dict[str, anthropic.Anthropic] = field(default_factory=dict)
    raw: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def oa(self, key: str) -> openai.OpenAI:
        if key not in self._oa:
            self._oa[key] = openai.OpenAI(
                base_url=self.base + "/v1", api_key=self.secret(key), max_retries=0, timeout=30
            )
        return self._oa[key]

    def an(self, key: str) -> anthropic.Anthropic:
        if key not in self._an:
            self._an[key] = anthropic.Anthropic(base_url=self.base, api_key=self.secret(key), max_retries=0, timeout=30)
        return self._an[key]

    def secret(self, key: str) -> str:
        return self.secrets.get(key, key)

    def close(self) -> None:
        for oa in self._oa.values():
            oa.close()
        for an in self._an.values():
            an.close()
        self.raw.close()


def _messages(s: Spec) -> Any:  # the SDKs' message TypedDicts
    return [{"role": "user", "content": s.prompt}]


def _chat(c: Clients, s: Spec, model: str, key: str | None = None, **kw: Any) -> tuple[int, str | None]:
    raw = c.oa(key or s.key).chat.completions.with_raw_response.create(
        model=model,
        messages=_messages(s),
        max_tokens=MAX_TOKENS,
        metadata=s.meta or None,
        **kw,
    )
    rid = raw.headers.get("x-request-id")
    if not kw.get("stream"):
        raw.parse()
        return raw.status_code, rid
    try:
        for _ in raw.parse():  # read to the end: [DONE], or the error event of a stream cut upstream
            pass
    except openai.APIError:
        return CUT, rid
    return raw.status_code, rid


def _messages_api(c: Clients, s: Spec, stream: bool) -> tuple[int, str | None]:
    """``/v1/messages``: half on the route whose rules read the prompt's size, with a system prompt."""
    client = c.an(s.key)
    kw: dict[str, Any] = {"model": "split", "max_tokens": MAX_TOKENS, "messages": _messages(s)}
    if s.i % 2:
        kw.update(model="ruled", system="You answer in one short sentence, politely.")
    if stream:
        with client.messages.with_streaming_response.create(stream=True, **kw) as resp:
            for _ in resp.iter_lines():
                pass
            return resp.status_code, resp.headers.get("x-request-id")
    raw = client.messages.with_raw_response.create(**kw)
    raw.parse()
    return raw.status_code, raw.headers.get("x-request-id")


def _post_raw(c: Clients, s: Spec, content: bytes) -> tuple[int, str | None]:
    r = c.raw.post(c.base + "/v1/chat/completions", content=content, headers=_auth(c, s.key))
    return r.status_code, r.headers.get("x-request-id")


def _messages_raw(c: Clients, s: Spec, content: bytes) -> tuple[int, str | None]:
    """A body the Anthropic API refuses (here: no ``max_tokens``), sent as the SDK would."""
    headers = {"x-api-key": c.secret(s.key), "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
    r = c.raw.post(c.base + "/v1/messages", content=content, headers=headers)
    return r.status_code, r.headers.get("x-request-id")


def _cache_headers(s: Spec) -> dict[str, str]:
    """no-cache / no-store, and on some requests a namespace of the client's own."""
    headers = {"x-llmgw-cache": ("no-cache", "no-store")[s.i % 2]}
    if s.i % 3 == 0:
        headers["x-llmgw-cache-namespace"] = f"tenant-{s.i % 2}"
    return headers


def _meta_header(s: Spec) -> dict[str, str]:
    """Rules read metadata from the body and the x-llmgw-metadata header (merged)."""
    return {"x-llmgw-metadata": '{"tier": "gold"}'} if s.i % 5 == 0 else {}


def _no_key(c: Clients) -> tuple[int, str | None]:
    r = c.raw.post(
        c.base + "/v1/chat/completions", json={"model": "split", "messages": [{"role": "user", "content": "x"}]}
    )
    return r.status_code, r.headers.get("x-request-id")


def _auth(c: Clients, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.secret(key)}", "Content-Type": "application/json"}


def _abandon(c: Clients, s: Spec) -> tuple[int, str | None]:
    """A stream the client leaves after its first event (the server logs it ``abandoned``)."""
    body = {"model": "slow-stream", "stream": True, "messages": _messages(s), "max_tokens": MAX_TOKENS}
    with c.raw.stream("POST", c.base + "/v1/chat/completions", json=body, headers=_auth(c, s.key)) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
        return ABANDONED, r.headers.get("x-request-id")


SENDERS: dict[str, Callable[[Clients, Spec], tuple[int, str | None]]] = {
    "split": lambda c, s: _chat(c, s, "split"),
    "split-stream": lambda c, s: _chat(c, s, "split", stream=True, stream_options={"include_usage": True}),
    "cached": lambda c, s: _chat(c, s, "cached"),
    "cached-stream": lambda c, s: _chat(c, s, "cached", stream=True),
    "cached-control": lambda c, s: _chat(c, s, "cached", extra_headers=_cache_headers(s)),
    "messages-invalid": lambda c, s: _messages_raw(
        c, s, b'{"model": "ruled", "messages": [{"role": "user", "content": "x"}]}'
    ),
    "bad-cache-header": lambda c, s: _chat(c, s, "cached", extra_headers={"x-llmgw-cache": "sometimes"}),
    "oversized": lambda c, s: _post_raw(
        c, s, b'{"model": "split", "messages": [{"role": "user", "content": "' + b"x" * 70_000 + b'"}]}'
    ),
    "cached-hot": lambda c, s: _chat(c, s, "cached", temperature=1.0),
    "ruled": lambda c, s: _chat(c, s, "ruled", extra_headers=_meta_header(s)),
    "cached-short": lambda c, s: _chat(c, s, "cached-short"),
    "sticky": lambda c, s: _chat(c, s, "sticky", **({"user": f"end-user-{s.i % 5}"} if s.i % 4 else {})),
    "fallback": lambda c, s: _chat(c, s, "fallback"),
    "chaos": lambda c, s: _chat(c, s, "chaos"),
    "chaos-stream": lambda c, s: _chat(c, s, "chaos-stream", stream=True),
    "stream-cut": lambda c, s: _chat(c, s, "stream-cut", stream=True),
    "abandon": _abandon,
    "limited": lambda c, s: _chat(c, s, "limited"),
    "messages": lambda c, s: _messages_api(c, s, False),
    "messages-stream": lambda c, s: _messages_api(c, s, True),
    "unknown-model": lambda c, s: _chat(c, s, "gpt-9000"),
    "malformed": lambda c, s: _post_raw(c, s, b'{"model": "split", "messages": [{"role": "user", "content": '),
    "schema": lambda c, s: _post_raw(c, s, b'{"model": "split", "messages": []}'),
    "bad-key": lambda c, s: _chat(c, s, "split", key="sk-llmgw-000000000000-notarealkeynotarealkey00"),
    "no-key": lambda c, s: _no_key(c),
    "revoked-key": lambda c, s: _chat(c, s, "split", key="doomed"),
    "not-allowed": lambda c, s: _chat(c, s, "ruled", key="narrow"),
    "broken": lambda c, s: _chat(c, s, "broken"),
}


def _embeddings(c: Clients, s: Spec) -> tuple[int, str | None]:
    raw = c.oa(s.key).embeddings.with_raw_response.create(model="text-embedding-3-small", input=s.prompt)
    raw.parse()
    return raw.status_code, raw.headers.get("x-request-id")


SENDERS["embeddings"] = _embeddings


def send(c: Clients, s: Spec) -> Sent:
    """Send one request; an error answer is a result too (its status and request id)."""
    try:
        status, rid = SENDERS[s.kind](c, s)
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        status, rid = exc.status_code, exc.response.headers.get("x-request-id")
    except (openai.APIError, anthropic.APIError, httpx.HTTPError) as exc:  # a stream the server cut
        status, rid = 0, getattr(getattr(exc, "response", None), "headers", {}).get("x-request-id")
    return Sent(s, status, rid)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class ParityRun:
    """A server, its keys and the results of one mix (``results`` in request order)."""

    gw: Gateway
    doc: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    results: list[Sent] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # policy versions served, in order

    @classmethod
    def start(cls, tmp: Path, upstream_url: str, requests: int, semantic: bool = False) -> ParityRun:
        doc = parity_policy(upstream_url, requests, semantic)
        gw = Gateway(tmp, doc, cls.gw_env())
        run = cls(gw, doc)
        for name, settings in KEYS.items():
            body = {"name": name, **{k: v for k, v in settings.items() if v is not None}}
            if name == "alpha":
                body["budget_usd"] = round(REQUEST_USD * requests * 0.04, 4)
            r = run.admin("POST", "/admin/virtual-keys", body)
            assert r.status_code == 201, r.text
            run.secrets[name], run.key_ids[name] = r.json()["key"], r.json()["id"]
        run.versions.append(run.health()["policy_version"])
        return run

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, self.gw.url + path, json=body, headers=headers, timeout=10)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.gw.url + "/health", timeout=10).json()

    def play(
        self, specs: list[Spec], concurrency: int = 4, reload: dict[str, Any] | None = None, restart: bool = False
    ) -> None:
        """Send ``specs``; a third of the way in, revoke ``doomed``, change ``gamma`` and start
        promoting ``reload`` (if given) while the rest is sent (the CLI takes a few seconds);
        two thirds in, if asked, restart the server on the same data directory."""
        third, two = len(specs) // 3, 2 * len(specs) // 3
        self._play(specs[:third], concurrency)
        assert self.admin("POST", f"/admin/virtual-keys/{self.key_ids['doomed']}/revoke").status_code == 200
        assert self.admin("PATCH", f"/admin/virtual-keys/{self.key_ids['gamma']}", {"rpm": 20}).status_code == 200
        if reload is None:
            self._play(specs[third:two], concurrency)
        else:  # a request of the old version stays in flight while the new one serves
            with self.held_stream():
                promoting = threading.Thread(target=self.promote, args=(reload,))
                promoting.start()
                self._play(specs[third:two], concurrency)
                promoting.join()
                assert len(self.versions) == 2, "the promotion did not take effect"
                self._play(specs[two : two + concurrency * 4], concurrency)
            two += concurrency * 4
        if restart:
            self.restart()
        self._play(specs[two:], concurrency)

    def restart(self) -> None:
        """SIGTERM the server (it drains, snapshots its cache and flushes the log) and start
        another on the same directory: spend, rate windows and the cache come back from there."""
        assert self.stop() == 0, self.gw.server_log()[-3000:]
        live = yaml.safe_load(self.gw.policy_path.read_text())  # rewritten as is: the same version
        self.gw = Gateway(self.gw.tmp, live, self.gw_env())

    @staticmethod
    def gw_env() -> dict[str, str]:
        return {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN, "LOCAL_API_KEY": UPSTREAM_KEY}

    def promote(self, doc: dict[str, Any]) -> str:
        """``llmgw policy promote`` a new version (archiving the live one) and wait until it serves."""
        candidate = self.gw.tmp / f"candidate-{len(self.versions)}.yaml"
        candidate.write_text(yaml.safe_dump(doc, sort_keys=False))
        out = subprocess.run(
            [sys.executable, "-m", "llmgw_kernel", "policy", "promote", str(candidate), "--policy",
             str(self.gw.policy_path)], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        deadline = time.monotonic() + 60
        while self.health()["policy_version"] == self.versions[-1]:
            assert time.monotonic() < deadline, "the server never reloaded the promoted policy"
            time.sleep(0.05)
        self.versions.append(self.health()["policy_version"])
        return self.versions[-1]

    @contextmanager
    def held_stream(self) -> Iterator[None]:
        """A slow stream open for the duration (it keeps the policy version it started with)."""
        body = {"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "held"}]}
        auth = {"Authorization": f"Bearer {self.secrets['delta']}"}
        with httpx.Client(timeout=30) as c, c.stream("POST", self.gw.url + "/v1/chat/completions", json=body,
                                                      headers=auth) as held:  # fmt: skip
            assert held.status_code == 200, held.read()
            events = held.iter_lines()  # kept: a discarded iterator closes the response
            next(events)
            yield
            next(events)  # still open
        self.results.append(Sent(Spec(-1, "held", "delta", "held", {}), ABANDONED, held.headers.get("x-request-id")))

    def _play(self, specs: list[Spec], concurrency: int) -> None:
        results: list[Sent | None] = [None] * len(specs)
        lock = threading.Lock()
        cursor = iter(range(len(specs)))

        def worker() -> None:
            clients = Clients(self.gw.url, self.secrets)
            try:
                while True:
                    with lock:
                        j = next(cursor, None)
                    if j is None:
                        return
                    results[j] = send(clients, specs[j])
            finally:
                clients.close()

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.results.extend(r for r in results if r is not None)

    def stop(self) -> int:
        """SIGTERM the server: it drains, flushes the log and exits."""
        return self.gw.terminate()

    def outcomes(self) -> Counter[tuple[str, int]]:
        return Counter((r.spec.kind, r.status) for r in self.results)


# -- reading a parity replay ------------------------------------------------------------------

_FACTS = (
    "request_id, endpoint, route, api, stream, status, outcome, error_type, policy_version, admission, cache,"
    " cache_source, plan"
)


def explain(result: Any, data_dir: Any, limit: int = 40) -> str:
    """The differing rows, one per line: the logged facts, then each stage's logged vs replayed value."""
    d = result.decisions
    bad = d[d["differs"]]
    if not len(bad):
        return "no differences"
    con = open_log(data_dir)
    ids = [str(i) for i in bad.index[:limit]]
    facts = {
        r[0]: r
        for r in con.execute(f"SELECT {_FACTS} FROM requests WHERE list_contains(?, request_id)", [ids]).fetchall()
    }
    pairs = sorted(
        {c.split("_", 1)[1] for c in d.columns if c.startswith("logged_")}
        & {c.split("_", 1)[1] for c in d.columns if c.startswith("replay_")}
    )
    lines = [f"{len(bad)} differing rows ({result.summary['differs_from_log']}); first {len(ids)}:", "  " + _FACTS]
    for rid in ids:
        row = bad.loc[rid]
        stages = "; ".join(f"{p}: logged={row[f'logged_{p}']!r} replayed={row[f'replay_{p}']!r}" for p in pairs
                           if row[f"logged_{p}"] != row[f"replay_{p}"])  # fmt: skip
        lines.append(f"  {facts.get(rid)}\n      -> {stages or 'same values; see the stage columns'}")
    return "\n".join(lines)
