"""`llmgw route explain`: the targets a request would try, in order, and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies" / "example-routing.yaml"


def _explain(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "llmgw_kernel", "route", "explain", "--policy", str(EXAMPLE), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_explain_names_the_matched_rule_and_the_order():
    out = _explain("--model", "assistant", "--metadata", '{"tier": "gold"}')
    assert out.returncode == 0, out.stderr
    assert "1. demo/demo-large  (first attempt)" in out.stdout and "2. demo/demo-small  (fallback)" in out.stdout
    assert "rule 'gold' (rules[0]) matched: metadata.tier=gold" in out.stdout


def test_explain_shows_sticky_draws_prompt_size_and_rule_functions():
    sticky = _explain("--model", "assistant", "--user", "ann")
    assert sticky.returncode == 0 and "sticky user=ann: weighted draw u=" in sticky.stdout
    assert "no rule matched (3 rules); default targets" in sticky.stdout
    long = _explain("--model", "assistant", "--prompt-tokens", "9000")
    assert "rule 'long-prompt' (rules[1]) matched: prompt_tokens 9000 > 8000" in long.stdout
    fn = _explain("--model", "tiered", "--metadata", '{"tier": "gold"}')
    assert "rule function tiers:route_by_tier chose ['demo/demo-large', 'demo/demo-small']: tier gold" in fn.stdout


def test_explain_unknown_model_or_bad_metadata_exit_1():
    out = _explain("--model", "gpt-9")
    assert out.returncode == 1 and "unknown model 'gpt-9'" in out.stderr and "assistant" in out.stderr
    bad = _explain("--model", "assistant", "--metadata", "{nope")
    assert bad.returncode == 1 and "--metadata is not valid JSON" in bad.stderr
