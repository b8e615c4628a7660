"""Provider credentials encrypted at rest, through a real `llmgw serve`: stored over the admin
API and the CLI, used upstream (a fake that checks the key), the master key rotated, a wrong
master key refused at start without touching the file; then canaries (a stored provider
secret and a virtual key) searched for everywhere they must never appear."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest
from conftest import free_port
from cryptography.fernet import Fernet, InvalidToken
from fake_openai import FakeOpenAI
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, chat, cli, metered_policy, serve_command, serve_env

from llmgw_kernel import open_log

CANARY_SECRET = f"sk-canary-provider-{uuid.uuid4().hex}"
OLD_MASTER = Fernet.generate_key().decode()


class Box:
    """The module's state: the server (replaced on restarts), the master key in force, the
    canary virtual key, and everything clients and commands were shown."""

    gw: KeyedGateway
    master: str = OLD_MASTER
    vkey: str = ""
    shown: list[str]

    def env(self, master: str | None = None) -> dict[str, str]:
        return {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN, "LLMGW_MASTER_KEY": master or self.master}

    def record(self, resp: httpx.Response | subprocess.CompletedProcess | str) -> None:
        if isinstance(resp, httpx.Response):
            self.shown.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
        elif isinstance(resp, subprocess.CompletedProcess):
            self.shown.append(f"{resp.returncode} {resp.stdout} {resp.stderr}")
        else:
            self.shown.append(resp)


@pytest.fixture(scope="module")
def vault():
    fake = FakeOpenAI(api_key=CANARY_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def box(upstream, vault, tmp_path_factory):
    policy = metered_policy(upstream.base_url)
    policy["providers"]["vault"] = {"kind": "openai", "base_url": vault.base_url, "api_key_credential": "canary-cred"}
    policy["routes"].update({
        "vaulted": {"targets": [{"provider": "vault", "model": "gpt-4o-mini"}]},
        "vault-echo": {"targets": [{"provider": "vault", "model": "echo-key"}]},
        "vault-500": {"targets": [{"provider": "vault", "model": "status-500"}]},
        "vault-401": {"targets": [{"provider": "vault", "model": "status-401"}]},
    })  # fmt: skip
    b = Box()
    b.shown = []
    b.gw = KeyedGateway(tmp_path_factory.mktemp("creds"), policy, b.env())
    yield b
    b.gw.terminate()


def raw(box: Box, method: str, path: str, key: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.request(method, box.gw.url + path, headers=headers, timeout=20, **kw)
    box.record(r)
    return r


def test_a_stored_credential_is_encrypted_and_used_upstream(box, vault):
    gw = box.gw
    health = httpx.get(f"{gw.url}/health").json()
    assert health["credentials_encrypted"] is True
    assert "credential 'canary-cred' is not stored" in health["routes"]["vaulted"]
    r = gw.admin("POST", "/admin/credentials", {"name": "canary-cred", "provider": "vault", "api_key": CANARY_SECRET})
    box.record(r)
    assert r.status_code == 201, r.text
    assert r.json()["api_key"] == "****" + CANARY_SECRET[-4:] and r.json()["name"] == "canary-cred"
    listed = gw.admin("GET", "/admin/credentials")
    box.record(listed)
    assert [c["name"] for c in listed.json()["data"]] == ["canary-cred"]
    assert httpx.get(f"{gw.url}/health").json()["routes"]["vaulted"] == "ok"

    key, _ = gw.create_key(name="canary-key", team="vault-team")
    box.vkey = key
    before = len(vault.requests)
    headers, completion = chat(gw.client(key), model="vaulted")
    box.record(f"{dict(headers)} {completion.model_dump_json()}")
    assert completion.choices[0].message.content.startswith("Hello from the fake upstream")
    assert len(vault.requests) == before + 1
    assert vault.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY_SECRET}"  # the stored key, decrypted

    for name in ("secrets.json", "events.jsonl"):  # owner-only
        assert (gw.data_dir / "keys" / name).stat().st_mode & 0o777 == 0o600, name
    assert (gw.data_dir / "keys").stat().st_mode & 0o777 == 0o700
    doc = orjson.loads((gw.data_dir / "keys" / "secrets.json").read_bytes())
    assert doc["encrypted"] is True and set(doc["credentials"]) == {"canary-cred"}
    token = doc["credentials"]["canary-cred"]["token"].encode()
    assert Fernet(box.master.encode()).decrypt(token).decode() == CANARY_SECRET


def test_credentials_cli(box):
    url = box.gw.url
    added = cli("credentials", "add", "--name", "second", "--provider", "local", "--url", url,
                env=box.env(), stdin="sk-second-secret-abcd\n")  # fmt: skip
    box.record(added)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["api_key"] == "****abcd" and "sk-second-secret" not in added.stdout
    listed = cli("credentials", "list", "--url", url, env=box.env())
    assert sorted(c["name"] for c in json.loads(listed.stdout)["data"]) == ["canary-cred", "second"]
    assert "sk-second-secret" not in listed.stdout and CANARY_SECRET not in listed.stdout
    deleted = cli("credentials", "delete", "second", "--url", url, env=box.env())
    assert deleted.returncode == 0 and json.loads(deleted.stdout)["deleted"] is True
    again = cli("credentials", "delete", "second", "--url", url, env=box.env())
    assert again.returncode == 1 and json.loads(again.stdout)["error"]["code"] == "credential_not_found"
    assert "sk-second-secret" not in (box.gw.data_dir / "keys" / "secrets.json").read_text()


def test_failing_upstreams_and_refusals_do_not_echo_secrets(box, vault):
    key = box.vkey
    for route, status in (("vault-echo", 400), ("vault-500", 500), ("vault-401", 502)):
        r = raw(box, "POST", "/v1/chat/completions", key,
                json={"model": route, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == status, (route, r.text)
        assert r.json()["error"]["message"]
    echo = box.shown[-3]
    assert "quotes what it received" in echo  # the upstream did quote its Authorization header...
    assert CANARY_SECRET not in echo  # ...and the gateway scrubbed it
    for path, body in (("/v1/chat/completions", {"model": "no-such-route", "messages": [{"role": "user", "content": "x"}]}),
                       ("/v1/chat/completions", {"model": "vaulted"}),
                       ("/v1/embeddings", {"model": "vaulted", "input": 7})):  # fmt: skip
        assert raw(box, "POST", path, key, json=body).status_code in (400, 404)
    near_miss = key[:-2] + ("xy" if not key.endswith("xy") else "zz")
    assert (
        raw(box, "POST", "/v1/chat/completions", near_miss, json={"model": "vaulted", "messages": []}).status_code
        == 401
    )
    assert raw(box, "GET", "/v1/llmgw/key", key).status_code == 200
    assert raw(box, "GET", "/v1/models", key).status_code == 200
    assert raw(box, "GET", "/admin/credentials", key).status_code == 401  # a virtual key is no admin token
    # the Anthropic inbound API with the key in x-api-key, streamed
    client = anthropic.Anthropic(base_url=box.gw.url, api_key=key, max_retries=0)
    with client.messages.stream(model="vaulted", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as s:
        box.record("".join(s.text_stream))
    assert vault.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY_SECRET}"


def test_rotate_master_then_start_with_only_the_new_key(box, vault):
    gw = box.gw
    secrets_path = gw.data_dir / "keys" / "secrets.json"
    assert gw.terminate() == 0
    made = cli("keys", "new-master")
    assert made.returncode == 0
    new = made.stdout.strip()
    Fernet(new.encode())  # a valid key
    wrong = cli(
        "keys",
        "rotate-master",
        "--data-dir",
        str(gw.data_dir),
        env={"LLMGW_MASTER_KEY": Fernet.generate_key().decode()},
    )
    box.record(wrong)
    assert wrong.returncode == 2 and "wrong master key" in wrong.stderr
    before = secrets_path.read_bytes()
    rotated = cli(
        "keys", "rotate-master", "--data-dir", str(gw.data_dir), env={"LLMGW_MASTER_KEY": f"{new},{OLD_MASTER}"}
    )
    box.record(rotated)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 2 secrets" in rotated.stdout
    after = orjson.loads(secrets_path.read_bytes())
    assert secrets_path.read_bytes() != before
    token = after["credentials"]["canary-cred"]["token"].encode()
    assert Fernet(new.encode()).decrypt(token).decode() == CANARY_SECRET
    with pytest.raises(InvalidToken):
        Fernet(OLD_MASTER.encode()).decrypt(token)
    with pytest.raises(InvalidToken):
        Fernet(OLD_MASTER.encode()).decrypt(after["pepper"].encode())

    box.master = new
    box.gw = gw = KeyedGateway(gw.tmp, None, box.env(new))
    assert httpx.get(f"{gw.url}/health").json()["routes"]["vaulted"] == "ok"
    before_calls = len(vault.requests)
    headers, completion = chat(gw.client(box.vkey), model="vaulted")  # the key hashes still match: same pepper
    box.record(f"{dict(headers)} {completion.model_dump_json()}")
    assert len(vault.requests) == before_calls + 1
    assert vault.requests[-1]["headers"]["Authorization"] == f"Bearer {CANARY_SECRET}"


@pytest.mark.parametrize(
    ("master", "expected"),
    [
        ("old", "wrong master key"),
        (None, "is encrypted but LLMGW_MASTER_KEY is not set"),
        ("not-a-fernet-key", "is not a valid Fernet key"),
    ],
)
def test_a_wrong_master_key_stops_the_server_and_changes_nothing(box, master, expected):
    secrets_path = box.gw.data_dir / "keys" / "secrets.json"
    assert box.gw.terminate() == 0
    before = secrets_path.read_bytes()
    events_before = (box.gw.data_dir / "keys" / "events.jsonl").read_bytes()
    env = {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}
    if master is not None:
        env["LLMGW_MASTER_KEY"] = OLD_MASTER if master == "old" else master
    proc = subprocess.run(serve_command(box.gw.tmp, free_port()), env=serve_env(env), cwd=box.gw.tmp,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    box.record(proc)
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert secrets_path.read_bytes() == before
    assert (box.gw.data_dir / "keys" / "events.jsonl").read_bytes() == events_before
    box.gw = KeyedGateway(box.gw.tmp, None, box.env())  # the right key still works
    assert chat(box.gw.client(box.vkey), model="vaulted")[1].usage.prompt_tokens == 11


def _texts_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_canaries_appear_nowhere(box, vault):
    gw, vkey = box.gw, box.vkey
    assert any(r["headers"].get("Authorization") == f"Bearer {CANARY_SECRET}" for r in vault.requests)  # it was used
    canaries = {"provider secret": CANARY_SECRET, "virtual key": vkey,
                "virtual key secret": vkey.split("-", 3)[3]}  # fmt: skip
    assert len(canaries["virtual key secret"]) >= 40
    for path in ("/metrics", "/health", "/health/ready", "/v1/models", "/v1/llmgw/key"):
        r = raw(box, "GET", path, vkey)
        assert r.status_code == 200, path
    metrics_text = box.shown[-5]
    assert "llmgw" in metrics_text
    box.record(gw.admin("GET", "/admin/virtual-keys"))
    box.record(gw.admin("GET", "/admin/credentials"))
    assert gw.terminate() == 0  # flushes the log

    con = open_log(gw.data_dir)
    rel = con.sql("SELECT * FROM requests")
    rows = rel.fetchall()
    con.close()
    assert len(rows) >= 10
    log_text = "\n".join(repr(r) for r in rows)
    assert "vault-echo" in log_text
    files = _texts_of(gw.tmp)  # the data dir, the policy and the server's own stdout/stderr
    assert any(name.endswith(".parquet") for name in files) and "serve.log" in files
    assert any("secrets.json" in name for name in files) and any("events.jsonl" in name for name in files)
    for what, canary in canaries.items():
        for name, content in files.items():
            assert canary.encode() not in content, f"{what} in {name}"
        assert canary not in log_text, f"{what} in the request log"
        for shown in box.shown:  # responses (errors included), headers, /metrics, /health, CLI output
            assert canary not in shown, f"{what} shown: {shown[:300]}"
    box.gw = KeyedGateway(gw.tmp, None, box.env())  # for the fixture's teardown
