"""Outside-style: `llmgw replay --source s3://...` that cannot be read, in one process and partitioned.

docs/replay-distributed.md: a CLI mistake is a usage error, a source that cannot be reached one
line — never a traceback. By hand: `--source s3://` with `--engine local --partitions 2` ended in
s3fs's `ValueError: Cannot traverse all of S3` traceback (the one-process path had been fixed);
`s3://b/x` with no credentials in botocore's `NoCredentialsError`, and with an endpoint nobody
listens on in `EndpointConnectionError` — tracebacks both in one process and partitioned. Only
127.0.0.1 is contacted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_POLICY, free_port

PARTITIONED = ["--engine", "local", "--partitions", "2"]


def _replay(tmp_path: Path, source: str, extra: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(DEMO_POLICY))
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HOME": str(tmp_path),
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(tmp_path / "live.yaml"), "--source", source,
         *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**base, **env},
    )  # fmt: skip


def test_a_partitioned_source_without_a_bucket_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    done = _replay(tmp_path, "s3://", PARTITIONED, {})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "llmgw replay: --source s3://" in done.stderr


@pytest.mark.parametrize("extra", [[], PARTITIONED], ids=["one-process", "partitioned"])
@pytest.mark.parametrize("why", ["no-credentials", "no-endpoint"])
def test_a_source_that_cannot_be_read_is_one_line(tmp_path: Path, extra: list[str], why: str) -> None:
    pytest.importorskip("s3fs")
    env = {}
    if why == "no-endpoint":
        env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
    done = _replay(tmp_path, "s3://llmgw-logs/prod", extra, env)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmgw replay: cannot read --source s3://llmgw-logs/prod: "), lines
