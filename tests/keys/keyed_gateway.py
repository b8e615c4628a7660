"""Helpers for the keys/limits end-to-end tests: a real `llmgw serve` with chosen secrets in its
environment (and extra flags), the admin API over httpx, and a metered policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import yaml
from conftest import UPSTREAM_KEY, Gateway, free_port, policy_for

ADMIN_TOKEN = "admin-token-for-tests-9d1c"
# $0.001 per token either way: the fake's usage (11 + 7 tokens) costs $0.018
PRICE = {"input_per_1m": 1000.0, "output_per_1m": 1000.0}
ACTUAL_USD = 0.018
_SECRET_ENV = ("LLMGW_ADMIN_TOKEN", "LLMGW_MASTER_KEY", "LLMGW_DASHBOARD_TOKEN")


def metered_policy(upstream_url: str, **extra) -> dict:
    """policy_for + prices for the fake's models, so every answer has a cost."""
    policy = policy_for(upstream_url)
    policy["pricing"] = {"gpt-4o-mini": PRICE, "gpt-4o": PRICE}
    policy.update(extra)
    return policy


class KeyedGateway(Gateway):
    """A `llmgw serve` subprocess whose environment holds exactly the LLMGW_* secrets given
    (none inherited from the test runner), with optional extra command-line flags. Started
    again on the same directory it keeps its data dir (and appends to its server log)."""

    def __init__(
        self, tmp: Path, policy: dict | None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.policy_path = tmp / "policies" / "live.yaml"
        if policy is not None:
            self.policy_path.parent.mkdir(parents=True, exist_ok=True)
            self.policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
        self.data_dir = tmp / "data"
        self.log_path = tmp / "serve.log"
        self.env = env or {}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            serve_command(tmp, self.port, args), stdout=self._log, stderr=subprocess.STDOUT,
            env=serve_env(self.env), cwd=tmp,
        )  # fmt: skip
        self.wait_ready()

    def restart(self, env: dict[str, str] | None = None) -> KeyedGateway:
        """SIGTERM this server (asserting a clean exit) and start another on the same directory."""
        assert self.terminate() == 0, self.server_log()[-3000:]
        return KeyedGateway(self.tmp, None, self.env if env is None else env)

    def admin(self, method: str, path: str, json: object = None, token: str | None = ADMIN_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.request(method, self.url + path, json=json, headers=headers, timeout=10)

    def create_key(self, **settings) -> tuple[str, dict]:
        """(the key itself, the created record)."""
        r = self.admin("POST", "/admin/virtual-keys", {"name": "k", **settings})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["key"], body

    def key_info(self, key: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}/llmgw/key", headers={"Authorization": f"Bearer {key}"}, timeout=10)

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=20)


def serve_env(env: dict[str, str]) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    full.pop("LLMGW_TEST_UNSET_KEY", None)
    return {**full, "LOCAL_API_KEY": UPSTREAM_KEY, **env}


def serve_command(tmp: Path, port: int, args: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--policy", str(tmp / "policies" / "live.yaml"), "--data-dir", str(tmp / "data"),
            "--drain-timeout", "10", *args]  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m llmgw_kernel ...` with exactly the LLMGW_* secrets given."""
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], env=serve_env(env or {}), input=stdin,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def chat(client: openai.OpenAI, model: str = "gpt-4o-mini", text: str = "hello", **kw):
    """(headers, completion) of one chat request through the raw-response API."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )
    return raw.headers, raw.parse()
