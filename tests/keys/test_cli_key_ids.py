"""`llmgw keys ...` / `llmgw credentials delete` put what the user typed into the admin URL as
one path segment (or a query value), never as a path: the admin token is only ever sent under
/admin/virtual-keys and /admin/credentials. And a key id the server does not know is a 404
`key_not_found` in the admin API's error format, whatever it looks like."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from fake_http import FakeServer
from keyed_gateway import ADMIN_TOKEN, KeyedGateway, cli, metered_policy

TOKEN = {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN}


class Recorder(FakeServer):
    """Any HTTP server the CLI may be pointed at: it records the raw path of every request."""

    name = "recorder"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.any)

    async def any(self, request: web.Request) -> web.Response:
        self.requests.append({"raw_path": request.raw_path, "query": dict(request.query), "method": request.method})
        return web.json_response({"id": "ok"})


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "revoke", "../../etc"),
        ("keys", "show", "a/b"),
        ("keys", "rotate", ".."),
        ("keys", "update", ".", "--rpm", "5"),
        ("keys", "show", ""),
        ("credentials", "delete", "../virtual-keys"),
    ],
)
def test_an_id_that_is_not_one_path_segment_is_refused_before_any_request(recorder, args):
    done = cli(*args, "--url", recorder.base_url, env=TOKEN)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "not a valid" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert recorder.requests == []  # the token went nowhere


def test_other_characters_are_quoted_into_one_segment_and_the_team_into_the_query(recorder):
    assert cli("keys", "show", "a b?c#d%2F", "--url", recorder.base_url, env=TOKEN).returncode == 0
    assert cli("keys", "revoke", "k?x=1", "--url", recorder.base_url, env=TOKEN).returncode == 0
    assert cli("credentials", "delete", "c#1", "--url", recorder.base_url, env=TOKEN).returncode == 0
    assert cli("keys", "list", "--team", "red&blue=1#x", "--url", recorder.base_url, env=TOKEN).returncode == 0
    seen = [(r["method"], r["raw_path"]) for r in recorder.requests]
    assert seen == [
        ("GET", "/admin/virtual-keys/a%20b%3Fc%23d%252F"),
        ("POST", "/admin/virtual-keys/k%3Fx%3D1/revoke"),
        ("DELETE", "/admin/credentials/c%231"),
        ("GET", "/admin/virtual-keys?team=red%26blue%3D1%23x"),
    ]
    assert recorder.requests[-1]["query"] == {"team": "red&blue=1#x"}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    g = KeyedGateway(tmp_path_factory.mktemp("ids"), metered_policy(upstream.base_url), TOKEN)
    yield g
    g.terminate()


def test_an_unknown_key_id_is_key_not_found_in_the_admin_error_format(gw):
    shown = cli("keys", "show", "nope", "--url", gw.url, env=TOKEN)
    assert shown.returncode == 1
    assert '"code": "key_not_found"' in shown.stdout and "No virtual key 'nope'" in shown.stdout, shown.stdout
    for method, path in (
        ("GET", "/admin/virtual-keys/nope"),
        ("PATCH", "/admin/virtual-keys/NOPE0000000a"),
        ("POST", "/admin/virtual-keys/nope/revoke"),
        ("POST", "/admin/virtual-keys/a%20b/rotate"),
    ):
        r = gw.admin(method, path, json={"rpm": 5} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "key_not_found", (method, path, r.text)
    wrong = gw.admin("GET", "/admin/credentials/c")  # a credential is only ever deleted
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed", wrong.text
    assert (
        httpx.get(f"{gw.url}/admin/virtual-keys/a/b", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()[
            "error"
        ]["code"]
        == "not_found"
    )
