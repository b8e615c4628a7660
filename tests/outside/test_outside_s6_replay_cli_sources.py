"""Outside-style: `llmgw replay --source s3://` (a prefix with no bucket: a variable left empty in a script),
and `--scheduler` naming a Dask scheduler that is not there.

docs/replay-distributed.md: `--source DIR|s3://bucket/prefix`; a CLI mistake is a one-line usage error,
never a traceback (tests/test_cli_usage_errors.py). By hand: `llmgw replay --policy P --source s3://`
ends with s3fs's `ValueError: Cannot traverse all of S3` traceback (from replay/sources.py listing the
prefix). No network is needed to see it: s3fs refuses before it connects. A `--scheduler` nobody
listens on ended with distributed's `OSError: Timed out trying to connect` traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import free_port

_ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # no AWS_* of the caller's
POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


def test_a_source_without_a_bucket_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(POLICY))
    done = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(tmp_path / "live.yaml"), "--source", "s3://"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**_ENV, "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_a_scheduler_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from llmgw_kernel import open_log

    open_log(str(tmp_path / "data")).close()
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(POLICY))
    scheduler = f"tcp://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(tmp_path / "live.yaml"),
         "--data-dir", str(tmp_path / "data"), "--engine", "dask", "--partitions", "1", "--scheduler", scheduler],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**_ENV, "HOME": str(tmp_path), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"},
    )  # fmt: skip
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"cannot reach the Dask scheduler {scheduler}" in done.stderr, done.stderr
