"""Outside-style: storing a provider credential through the admin API while the disk is nearly full.

docs/keys.md: the secrets file (every provider credential, encrypted, and the pepper virtual keys
are hashed with) is rewritten "atomic (temporary file, fsync, rename)". It was written with one
``os.write``: on a disk with less room than the file, ``os.write`` returns a short count without an
error, and that part of the file was fsynced and renamed over the whole one. This test on the code
before (a 4 MB tmpfs, 4 credentials of 2,500-character keys, then 8 KB free): ``POST
/admin/credentials`` answered 201, ``secrets.json`` was cut from 17,096 bytes to 8,192, and the
next ``llmgw serve`` on that directory exited 1 with ``orjson.JSONDecodeError: unexpected end of
data``: every credential and every virtual key (their hashes need the pepper) gone with it.

Expected: the write that does not fit fails as a whole: a 503 in the API's error format naming the
cause, nothing changed on disk or in memory, and the directory starts again with every credential
and key once the disk has room.
Needs root to mount a small tmpfs (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
from conftest import health_or_none, serve_demo, sigterm_and_wait, tmpfs, until
from cryptography.fernet import Fernet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

TOKEN = "admin-token-s10"
NAMES = [f"cred-{i}" for i in range(4)]


def _up(url: str) -> None:
    until("the server is up", lambda: (h := health_or_none(url)) is not None and h.status_code == 200, 60)


def _names(admin: httpx.Client, url: str) -> list[str]:
    listed = admin.get(f"{url}/admin/credentials")
    assert listed.status_code == 200, listed.text
    return sorted(c["name"] for c in listed.json()["data"])


def test_a_credential_that_does_not_fit_is_refused_whole_and_the_directory_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMGW_MASTER_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("LLMGW_ADMIN_TOKEN", TOKEN)
    admin = httpx.Client(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    with tmpfs(tmp_path / "disk", "4m") as disk:
        data = disk / "data"
        server, url = serve_demo(tmp_path, data)
        try:
            _up(url)
            for name in NAMES:
                stored = admin.post(
                    f"{url}/admin/credentials", json={"name": name, "provider": "openai", "api_key": name * 500}
                )
                assert stored.status_code == 201, stored.text
            made = admin.post(f"{url}/admin/virtual-keys", json={"name": "app", "team": "t1"})
            assert made.status_code == 201, made.text
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=made.json()["key"], max_retries=0)
            assert client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}]).id
            secrets_file = data / "keys" / "secrets.json"
            size = secrets_file.stat().st_size
            assert size > 16_000
            until("the request's row written", lambda: (h := health_or_none(url)) and h.json()["log"]["buffered"] == 0)

            filler = disk / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            os.truncate(filler, filler.stat().st_size - 8192)  # ~8 KB of room: less than the file
            refused = admin.post(
                f"{url}/admin/credentials", json={"name": "cred-new", "provider": "openai", "api_key": "n" * 3000}
            )
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "storage_unavailable" and "No space left on device" in error["message"]
            assert secrets_file.stat().st_size == size  # the file as it was, whole
            assert not [p.name for p in secrets_file.parent.iterdir() if p.name.endswith(".tmp")]
            assert _names(admin, url) == NAMES  # nor changed in memory
            filler.unlink()
        finally:
            sigterm_and_wait(server, 30)
        log = (tmp_path / "serve.log").read_text()
        assert "admin POST /admin/credentials -> 503 storage_unavailable" in log

        server, url = serve_demo(tmp_path, data)  # the same directory, started again
        try:
            _up(url)
            assert _names(admin, url) == NAMES
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=made.json()["key"], max_retries=0)
            reply = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "again"}])
            assert reply.choices[0].message.content
        finally:
            sigterm_and_wait(server, 30)
            admin.close()
