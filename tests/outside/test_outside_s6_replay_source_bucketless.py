"""Outside-style: `llmgw replay --source s3://` (a prefix with no bucket: a variable left empty in a script).

docs/replay-distributed.md: `--source DIR|s3://bucket/prefix`; a CLI mistake is a one-line usage error,
never a traceback (tests/test_cli_usage_errors.py). By hand: `llmgw replay --policy P --source s3://`
ends with s3fs's `ValueError: Cannot traverse all of S3` traceback (from replay/sources.py listing the
prefix). No network is needed to see it: s3fs refuses before it connects.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

POLICY = {
    "providers": {"demo": {"kind": "demo"}},
    "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
}


@pytest.mark.xfail(strict=True, reason="replay/sources.py (not HOUT's): s3:// without a bucket is a traceback")
def test_a_source_without_a_bucket_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(POLICY))
    done = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(tmp_path / "live.yaml"), "--source", "s3://"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
