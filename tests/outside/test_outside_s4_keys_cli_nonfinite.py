"""Outside-style: `llmgw keys create` with a non-finite number is a clear error, never a traceback.

README.md: "`llmgw keys create|list|show|update|revoke|rotate ...` the admin API from the shell";
docs/keys.md: the admin API answers a bad field with a 400 naming it (`budget_usd: must be a
number >= 0`, as `--budget-usd -5` shows). `--budget-usd nan`, `--budget-usd inf` and
`--metadata '{"a": 1e999}'` instead crash the CLI while it encodes the request
(`ValueError: Out of range float values are not JSON compliant`, a traceback, exit 1).
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from conftest import policy_for

ADMIN = "outside-admin-token-0123456789"


@pytest.mark.parametrize(
    "args",
    [
        ["--budget-usd", "nan"],
        ["--budget-usd", "inf"],
        ["--metadata", '{"a": 1e999}'],
        ["--metadata", '{"a": NaN}'],
        ["--metadata", "{not json"],
        ["--metadata", "[1]"],
    ],
    ids=["budget-nan", "budget-inf", "metadata-1e999", "metadata-nan", "metadata-not-json", "metadata-not-object"],
)
def test_keys_create_refuses_non_finite_numbers_cleanly(upstream, make_gateway, args: list[str]) -> None:
    gw = make_gateway(policy_for(upstream.base_url), env={"LLMGW_ADMIN_TOKEN": ADMIN})
    env = {**os.environ, "LLMGW_ADMIN_TOKEN": ADMIN}
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "keys", "create", "--url", gw.url, "--name", "x", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "Traceback" not in out.stderr, out.stderr[-1500:]
    assert out.returncode == 2, (out.returncode, out.stdout)  # a usage error, before anything is sent
    field = "budget" if args[0] == "--budget-usd" else "metadata"
    assert field in (out.stdout + out.stderr), (out.stdout, out.stderr)
    keys = httpx.get(f"{gw.url}/admin/virtual-keys", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert keys.status_code == 200, keys.text
    assert [k["name"] for k in keys.json()["data"]] == [], keys.text  # nothing half-created
