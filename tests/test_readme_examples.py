"""Every example in README.md runs as written (issue 13): against a real `llmgw serve` started
the README's way (in a fresh directory: it creates `policies/live.yaml` and `llmgw-data/`), with
only the port (8000 -> a free one) and the venv path (`.venv/bin/` -> this interpreter) changed.
A block this test does not know how to run fails it, so a new README example is covered or
named here."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", README, re.S)]
SET_UP = [code for lang, code in BLOCKS if lang == "bash" and "pip install" in code]


def test_the_set_up_is_two_commands_and_ci_runs_the_second() -> None:
    assert len(SET_UP) == 2, SET_UP
    serve, test = (c.strip() for c in SET_UP)
    assert serve.endswith("llmgw serve") and test.endswith("python -m pytest -n 2 --dist loadfile")
    assert test in (ROOT / ".ci" / "run").read_text().replace(" -q ", " ")  # CI runs it (quietly)


class Served:
    def __init__(self, cwd: Path) -> None:
        self.cwd, self.port = cwd, free_port()
        self.log = open(cwd / "serve.log", "wb")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMGW_") and k != "OPENAI_API_KEY"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(self.port), "--no-dashboards"],
            cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (cwd / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("llmgw serve did not start")

    def as_written(self, code: str) -> str:
        """The example with this server's port and this interpreter for `.venv/bin/`."""
        code = re.sub(r"(localhost|127\.0\.0\.1):8000", rf"\g<1>:{self.port}", code)
        return code.replace(".venv/bin/llmgw", f"{sys.executable} -m llmgw_kernel")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    s = Served(tmp_path_factory.mktemp("readme"))
    yield s
    s.stop()


def _rows(cwd: Path) -> int:
    from llmgw_kernel import open_log

    return int(open_log(cwd / "llmgw-data").execute("SELECT count(*) FROM requests").fetchone()[0])


def test_every_readme_example_runs(served: Served) -> None:
    ran = []
    for lang, code in BLOCKS:
        if lang == "bash" and "pip install" in code:
            continue  # the set-up: CI runs it (test above)
        if lang == "bash" and code.lstrip().startswith("curl"):
            out = subprocess.run(["bash", "-c", served.as_written(code)], capture_output=True, text=True, timeout=60)
            assert '"choices"' in out.stdout, out.stdout + out.stderr
        elif lang == "bash" and "llmgw replay" in code:
            deadline = time.monotonic() + 60  # the log flushes every 500 ms
            while _rows(served.cwd) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            out = subprocess.run(["bash", "-c", served.as_written(code)], cwd=served.cwd, capture_output=True,
                                 text=True, timeout=300)  # fmt: skip
            assert out.returncode == 0 and "requests: 2" in out.stdout, out.stdout + out.stderr
        elif lang == "python":
            out = io.StringIO()
            cwd = os.getcwd()
            os.chdir(served.cwd)
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(served.as_written(code), "README.md", "exec"), {"__name__": "readme"})
            finally:
                os.chdir(cwd)
            if "stream=True" in code:
                assert "ChatCompletionChunk" in out.getvalue()
        elif lang == "yaml":
            _validates(code)
        else:
            raise AssertionError(f"README has a {lang} block this test does not run:\n{code}")
        ran.append(lang)
    assert ran.count("python") == 2 and ran.count("yaml") == 2, ran


def _validates(snippet: str) -> None:
    """A full policy validates as it stands; a section (no `routes`) validates inside the minimal one."""
    from llmgw_kernel.policy.load import load_policy

    doc = yaml.safe_load(snippet)
    if "routes" not in doc:
        minimal = next(yaml.safe_load(c) for lang, c in BLOCKS if lang == "yaml" and "routes:" in c)
        doc = {**minimal, **doc}
    load_policy(doc)
