"""The CLI as a person meets it (issue 13, item 5): `llmgw traffic` says why requests failed and
fails when most do, sends a virtual key, starts its server on a chosen port; `llmgw replay`
refuses a data directory without a log and a bad --since/--until with one clear line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port, policy_for
from keys.keyed_gateway import ADMIN_TOKEN, KeyedGateway

from llmgw_kernel import cli

DEMO_POLICY = {"providers": {"demo": {"kind": "demo"}}, "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
               "log": {"flush_ms": 100}}  # fmt: skip


def llmgw(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("LLMGW_API_KEY", "LLMGW_TRAFFIC_PORT")}
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], cwd=cwd, env={**full, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_traffic_names_the_reason_and_fails_when_most_requests_fail(tmp_path: Path, upstream) -> None:
    policy = policy_for(upstream.base_url)
    policy["routes"] = {"demo": policy["routes"]["demo"], "no-key": policy["routes"]["no-key"]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(policy))
    # two routes served alternately: every no-key request fails for want of its provider's key
    out = llmgw("traffic", "--policy", "p.yaml", "--data-dir", "d", "-n", "20", "--route", "no-key", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "0 ok, 20 errors" in out.stdout
    assert "503 no_target_available" in out.stdout and "LLMGW_TEST_UNSET_KEY is not set" in out.stdout
    assert "most requests failed (20 of 20)" in out.stderr
    mixed = llmgw("traffic", "--policy", "p.yaml", "--data-dir", "d2", "-n", "20", cwd=tmp_path)
    ok, errors = (int(x) for x in re.search(r"(\d+) ok, (\d+) errors", mixed.stdout).groups())  # type: ignore[union-attr]
    assert ok + errors == 20 and 0 < errors < ok, mixed.stdout  # the two routes drawn at random
    assert mixed.returncode == 0 and "errors by reason" in mixed.stdout  # a minority failing: reported, not fatal


def test_traffic_sends_a_virtual_key_from_the_flag_or_the_environment(tmp_path: Path) -> None:
    gw = KeyedGateway(tmp_path / "gw", DEMO_POLICY, {"LLMGW_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        key, _ = gw.create_key()  # from now on the gateway refuses requests without a key
        base = ("traffic", "--policy", str(gw.policy_path), "--url", gw.url, "--data-dir", "unused", "-n", "6")
        refused = llmgw(*base, cwd=tmp_path)
        assert refused.returncode == 1 and "401" in refused.stdout, refused.stdout + refused.stderr
        assert llmgw(*base, "--api-key", key, cwd=tmp_path).stdout.startswith("sent 6 requests: 6 ok, 0 errors")
        by_env = llmgw(*base, cwd=tmp_path, env={"LLMGW_API_KEY": key})
        assert by_env.returncode == 0 and "6 ok" in by_env.stdout, by_env.stdout + by_env.stderr
        assert key not in refused.stdout + by_env.stdout + by_env.stderr  # never echoed
    finally:
        gw.terminate()


def test_traffic_starts_its_server_on_the_port_asked_for(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    port = free_port()
    out = llmgw("traffic", "--policy", "p.yaml", "--data-dir", "d", "-n", "3", cwd=tmp_path,
                env={"LLMGW_TRAFFIC_PORT": str(port)})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / f".traffic-serve-{port}.log").exists()  # the server it started took that port


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--data-dir", "no-such-dir"), "llmgw replay: no-such-dir does not exist"),
        (("--data-dir", "empty"), "llmgw replay: empty holds no request log"),
        (("--data-dir", "served", "--since", "yesterday"), "llmgw replay: --since 'yesterday': expected a UTC time"),
        (("--data-dir", "served", "--until", "2026-13-01"), "llmgw replay: --until '2026-13-01': expected"),
        (
            ("--data-dir", "served", "--since", "2026-12-02", "--until", "2026-12-01"),
            "llmgw replay: --since 2026-12-02T00:00:00+00:00 is not before",
        ),
        (("--data-dir", "served", "--policy", "missing.yaml"), "llmgw replay: missing.yaml: <root>: cannot read"),
    ],
)
def test_replay_refuses_bad_input_with_one_line(tmp_path: Path, served_dir: Path, args, says) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "served").symlink_to(served_dir)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    out = llmgw("replay", "--policy", "p.yaml", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), out.stderr
    assert not (tmp_path / "no-such-dir").exists()  # a typo creates nothing


def test_replay_accepts_relative_and_iso_windows(tmp_path: Path, served_dir: Path, monkeypatch, capsys) -> None:
    """The relative window through the command as a person runs it (its exit status, its stdout);
    the two ISO forms through ``cli.main`` in this process — the same parser and replay, without
    paying a second and third interpreter start and import (~1-4 s each)."""
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    args = ("replay", "--policy", "p.yaml", "--data-dir", str(served_dir), "--json", "--since")
    out = llmgw(*args, "1d", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert '"requests": 4' in out.stdout, out.stdout[:400]
    monkeypatch.chdir(tmp_path)
    for since in ("2026-01-01", "2026-01-01T00:00:00Z"):
        assert cli.main([*args, since]) == 0
        printed = capsys.readouterr().out
        assert '"requests": 4' in printed, printed[:400]


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with 4 requests served by a real server."""
    tmp = tmp_path_factory.mktemp("served")
    (tmp / "p.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    out = llmgw("traffic", "--policy", "p.yaml", "--data-dir", "data", "-n", "4", cwd=tmp)
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp / "data"
