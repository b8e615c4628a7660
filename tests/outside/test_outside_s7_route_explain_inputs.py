"""Outside-style: `llmgw route explain` given a request the gateway would never route.

The command answers "which targets would this request try, and why" — for a request the proxy
would serve. By hand: `--prompt-tokens -5` explained a request of -5 prompt tokens (rules on prompt
size compare against it; no request has that), and `--metadata '{"team": 5}'` explained a request
whose team is the number 5, which the proxy refuses with a 400 (`metadata.team` must be a string).
Expected: `--prompt-tokens` below 0 is a usage error (exit 2), and metadata the proxy refuses is
refused with the proxy's reason (exit 1, as the command's other --metadata errors), no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_POLICY


def _explain(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "route", "explain", "--policy", "live.yaml", "--model", "demo", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("tokens", ["-5", "-1"])
def test_negative_prompt_tokens_are_a_usage_error(tmp_path: Path, tokens: str) -> None:
    done = _explain(tmp_path, "--prompt-tokens", tokens)
    assert done.returncode == 2, done
    assert "--prompt-tokens" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("meta", ['{"team": 5}', '{"user": {"a": 1}}'])
def test_metadata_the_proxy_refuses_is_refused(tmp_path: Path, meta: str) -> None:
    done = _explain(tmp_path, "--metadata", meta)
    assert done.returncode == 1, done
    assert "must be a string" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_request_the_proxy_serves_is_explained(tmp_path: Path) -> None:
    done = _explain(tmp_path, "--metadata", '{"team": "a"}', "--prompt-tokens", "0")
    assert done.returncode == 0, done
    assert "demo/demo-echo" in done.stdout
