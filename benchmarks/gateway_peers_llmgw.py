"""Start llmgw for the shared gateway peer benchmark (``../shared/bench/gateway-peers``).

Renders ``gateway-peers.llmgw.policy.yaml`` (``string.Template``, values from the environment: bench.py
exports MOCK_UPSTREAM_FAST / _SLOW / _STREAM) into a fresh directory, then *execs*
``python -m llmgw_kernel serve`` on it, so the process bench.py measures is the gateway
itself. Used by ``gateway-peers.llmgw.toml``:

    python benchmarks/gateway_peers_llmgw.py --port 29100 [--run-dir DIR] [extra serve args]
"""

from __future__ import annotations

import argparse
import os
import string
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--run-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the fresh dir goes")
    ap.add_argument("--template", type=Path, default=HERE / "gateway-peers.llmgw.policy.yaml")
    args, extra = ap.parse_known_args()
    missing = [v for v in ("MOCK_UPSTREAM_FAST", "MOCK_UPSTREAM_SLOW", "MOCK_UPSTREAM_STREAM") if v not in os.environ]
    if missing:
        sys.exit(f"{', '.join(missing)} not set (bench.py exports them)")
    args.run_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmgw-peers-", dir=args.run_dir))
    policy = work / "live.yaml"
    policy.write_text(string.Template(args.template.read_text()).substitute(os.environ))
    os.environ.setdefault("BENCH_UPSTREAM_KEY", "sk-dummy")
    argv = [sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port", str(args.port),
            "--policy", str(policy), "--data-dir", str(work / "data"), "--log-level", "warning", *extra]  # fmt: skip
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
