"""Outside-style: `llmgw forecast check` (and rollback, and the policy page's figures) over a
recorded forecast file that is damaged — truncated by a full disk or a crash, or edited by hand.

By hand: with `history/live/forecasts/<stamp>-<version>.json` holding `garbage{`, nothing, `[]`
or `{"version": 5}`, `llmgw forecast check` ended in a traceback (JSONDecodeError, TypeError
"list indices must be integers", KeyError 'promoted_at'). Expected: one line naming the file and
what is wrong with it (exit 1), never a traceback; a rollback to that version still rolls back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO_POLICY

from llmgw_kernel import load_policy

DAMAGE = {
    "not-json": "garbage{",
    "empty": "",
    "a-list": "[]",
    "no-promoted_at": '{"version": "V", "forecast": {"basis": {}, "figures": {}, "groups": {}}}',
    "bad-promoted_at": '{"version": "V", "promoted_at": "soon", "forecast": {"basis": {}, "figures": {}, "groups": {}}}',
    "no-figures": '{"version": "V", "promoted_at": "2026-12-06T04:00:00+00:00", "forecast": {"basis": {}}}',
}


def _llmgw(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_forecast_check_of_a_damaged_record_names_it(tmp_path: Path, damage: str) -> None:
    live = tmp_path / "live.yaml"
    live.write_text(yaml.safe_dump(DEMO_POLICY))
    version = load_policy(live).version
    folder = tmp_path / "history" / "live" / "forecasts"
    folder.mkdir(parents=True)
    record = folder / f"20261206T040000000000Z-{version}.json"
    record.write_text(DAMAGE[damage].replace('"V"', f'"{version}"'))
    (tmp_path / "data").mkdir()
    done = _llmgw(tmp_path, "forecast", "check", "--policy", "live.yaml", "--data-dir", "data")
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("llmgw forecast check: "), done.stderr
    assert str(record.relative_to(tmp_path)) in done.stderr, done.stderr
    assert "not a forecast record" in done.stderr, done.stderr


def test_rollback_to_a_version_whose_record_is_damaged_still_rolls_back(tmp_path: Path) -> None:
    live, cand = tmp_path / "live.yaml", tmp_path / "cand.yaml"
    live.write_text(yaml.safe_dump(DEMO_POLICY))
    old = load_policy(live).version
    cand.write_text(yaml.safe_dump({**DEMO_POLICY, "log": {"flush_ms": 123}}))
    assert _llmgw(tmp_path, "policy", "promote", "cand.yaml", "--policy", "live.yaml").returncode == 0
    folder = tmp_path / "history" / "live" / "forecasts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"20261206T040000000000Z-{old}.json").write_text("garbage{")
    done = _llmgw(tmp_path, "policy", "rollback", "--policy", "live.yaml")
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0 and load_policy(live).version == old, (done.stdout, done.stderr)
    assert "not a forecast record" in done.stderr, done.stderr


def test_the_policy_page_says_a_damaged_record_and_shows_the_rest(gateway) -> None:
    """By hand, the same damage left the policy page on "Loading…" for good (its query raised)."""
    from conftest import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    version = load_policy(gateway.policy_path).version
    folder = gateway.policy_path.parent / "history" / "live" / "forecasts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"20261206T040000000000Z-{version}.json").write_text("garbage{")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            assert page.goto(f"{gateway.url}/policy", timeout=120_000).status == 200
            page.wait_for_selector("[data-ready]", state="attached", timeout=180_000)
            page.locator("text=not a forecast record").first.wait_for(state="attached", timeout=60_000)
            assert page.locator("table").count() >= 1  # the versions table is shown
        finally:
            browser.close()
