"""kill -9 and SIGTERM under load (issue 10, item 5): a real `llmgw serve` serves concurrent
JSON and streamed requests (httpx and the openai SDK; /v1/messages streams too); the process is killed mid-load and
restarted on the same data directory. Every request whose response the client received in
full is then in the log, under the x-request-id it received, and no row is written twice."""

from __future__ import annotations

import random
import threading
import time

import httpx
import openai
from conftest import Gateway, policy_for

from llmgw_kernel import open_log

MSG = [{"role": "user", "content": "crash test"}]
WORKERS = 8


class Load:
    """Clients that record the x-request-id of every response they received completely."""

    def __init__(self, gw: Gateway, seed: int) -> None:
        self.gw = gw
        self.seed = seed
        self.received: set[str] = set()
        self.client_ids: dict[str, str] = {}
        self.errors = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(WORKERS)]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def wait_for(self, n: int, at_least_s: float, timeout: float = 60) -> None:
        """Let the load run ``at_least_s`` and until ``n`` responses were received (bounded)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if time.monotonic() - t0 >= at_least_s and len(self.received) >= n:
                return
            time.sleep(0.05)

    def join(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(30)

    def _done(self, rid: str, client_id: str | None = None) -> None:
        with self._lock:
            self.received.add(rid)
            if client_id:
                self.client_ids[rid] = client_id

    def _run(self, worker: int) -> None:
        rnd = random.Random(self.seed * 100 + worker)
        http = httpx.Client(timeout=10)
        sdk = openai.OpenAI(base_url=self.gw.base_url, api_key="unused", max_retries=0, timeout=10)
        n = 0
        while not self.stop.is_set():
            n += 1
            kind = rnd.choice(("json", "stream", "sdk-json", "sdk-stream", "404", "messages-stream"))
            try:
                self._one(http, sdk, kind, f"w{worker}-{n}")
            except (httpx.HTTPError, openai.APIError):
                with self._lock:
                    self.errors += 1  # the server died under this request: not received
        http.close()
        sdk.close()

    def _one(self, http: httpx.Client, sdk: openai.OpenAI, kind: str, cid: str) -> None:
        url = f"{self.gw.base_url}/chat/completions"
        if kind in ("json", "404"):
            model = "gpt-4o-mini" if kind == "json" else "no-such-route"
            r = http.post(url, json={"model": model, "messages": MSG}, headers={"x-request-id": cid})
            self._done(r.headers["x-request-id"], r.headers.get("x-client-request-id"))
        elif kind == "stream":
            body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
            with http.stream("POST", url, json=body) as r:
                for _ in r.iter_bytes():
                    pass
                self._done(r.headers["x-request-id"])  # the body ended normally: received in full
        elif kind == "messages-stream":  # the Anthropic inbound API: message_stop comes after the journal
            body = {"model": "gpt-4o-mini", "max_tokens": 20, "messages": MSG, "stream": True}
            with http.stream("POST", f"{self.gw.url}/v1/messages", json=body) as r:
                text = b"".join(r.iter_bytes())
                assert b"message_stop" in text
                self._done(r.headers["x-request-id"])
        elif kind == "sdk-json":
            raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
            raw.parse()
            self._done(raw.headers["x-request-id"])
        else:
            with sdk.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini",
                messages=MSG,
                stream=True,  # type: ignore[arg-type]
            ) as resp:
                for _ in resp.parse():
                    pass
                self._done(resp.headers["x-request-id"])


def logged(data_dir) -> tuple[dict[str, str | None], int]:
    con = open_log(data_dir)
    rows = con.execute("SELECT request_id, client_request_id FROM requests").fetchall()
    con.close()
    return dict(rows), len(rows)


def test_kill_9_under_load_loses_no_answered_request(upstream, tmp_path):
    policy = policy_for(upstream.base_url, log={"flush_ms": 500})
    gw = Gateway(tmp_path, policy)
    load = Load(gw, seed=1).start()
    load.wait_for(150, at_least_s=2.0)
    gw.proc.kill()  # SIGKILL, mid-load
    gw.proc.wait(10)
    load.join()
    gw.terminate()
    assert len(load.received) > 100, len(load.received)

    restarted = Gateway(tmp_path, policy)  # same data directory: folds the journal
    try:
        rows, n = logged(restarted.data_dir)
        missing = load.received - set(rows)
        assert not missing, f"{len(missing)} of {len(load.received)} answered requests are not in the log"
        assert n == len(rows), f"{n - len(rows)} rows written twice"
        for rid, cid in load.client_ids.items():
            assert rows[rid] == cid  # x-request-id is the row; the client's id is client_request_id
    finally:
        restarted.terminate()


def test_sigterm_under_load_loses_no_answered_request(upstream, tmp_path):
    policy = policy_for(upstream.base_url, log={"flush_ms": 60000})  # only the shutdown flush writes
    gw = Gateway(tmp_path, policy)
    load = Load(gw, seed=2).start()
    load.wait_for(80, at_least_s=1.5)
    assert gw.terminate() == 0
    load.join()
    rows, n = logged(gw.data_dir)
    assert len(load.received) > 50
    assert not load.received - set(rows)
    assert n == len(rows)
    journal = gw.data_dir / "log" / "journal"
    assert not list(journal.glob("*.wal"))  # everything folded into segments at shutdown
